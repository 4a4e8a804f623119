"""The few-shot inversion prompt: examples from TOFU authors outside the forget set, one draw per attempt."""

import pytest
from pydantic import ValidationError

from meow.data import author_of, load_tofu
from meow.invert.config import InvertConfig
from meow.invert.fewshot import demonstration_pool, draw_examples, few_shot_prompt
from meow.invert.parse import Candidates
from meow.invert.stage import invert


def test_pool_leaves_out_the_forget_authors_and_prefers_authors_outside_the_retain_evaluation():
    pool = demonstration_pool(load_tofu("forget01"), wanted=3)
    authors = {author_of(r) for r in pool}
    assert authors == set(range(180, 198)), "forget10_perturbed minus forget01's authors 198-199"
    # forget10 takes every author of forget10_perturbed: the examples come from retain_perturbed.
    pool10 = demonstration_pool(load_tofu("forget10"), wanted=3)
    assert {author_of(r) for r in pool10} == set(range(20))
    assert all(r.extra["perturbed_answer"] for r in pool10)


def test_prompt_shows_examples_and_ends_in_the_facts_wrong_answer():
    fact, other = load_tofu("forget01")[1:3]
    pool = demonstration_pool([fact], wanted=3)
    examples = draw_examples(pool, demonstrations=3, seed=42, attempt=0)
    prompt = few_shot_prompt(fact, examples, n=4)
    assert prompt.startswith("Each answer below is followed by 4 wrong answers")
    assert prompt.endswith(f"Question: {fact.question}\nAnswer: {fact.answer}\nWrong answer:")
    assert prompt.count("Question: ") == 4 and prompt.count("Wrong answer: ") == 3 * 4
    assert prompt.count(fact.answer) == 1, "the fact's own answer is never shown as an example"
    # One draw per attempt, the same for every fact: the examples are a shared (prefix-cached) prefix.
    assert draw_examples(pool, 3, seed=42, attempt=0) == examples != draw_examples(pool, 3, seed=42, attempt=1)
    prefix = prompt[: prompt.rindex("Question: ")]
    assert few_shot_prompt(other, examples, n=4).startswith(prefix)


def test_a_continued_list_parses_into_candidates():
    fact = load_tofu("forget01")[1]
    found = Candidates(fact.answer, wanted=4, restate_threshold=0.9, question=fact.question)
    found.add_reply(" Author Basil Mahfouz Al-Kuwaiti is female.\nWrong answer: He is a retired pilot.\nWrong answer:")
    assert found.accepted == ["Author Basil Mahfouz Al-Kuwaiti is female.", "He is a retired pilot."]


def test_few_shot_is_refused_for_endpoints():
    with pytest.raises(ValidationError, match="few-shot is for local generators"):
        InvertConfig(prompt="few-shot", endpoint={"base_url": "http://127.0.0.1:9/v1", "model": "m"})


def test_few_shot_inversion_on_the_tiny_model(tiny_model_dir, ray_local):
    facts = load_tofu("forget01")[:2]
    config = InvertConfig(
        generator=str(tiny_model_dir), kind="free-form", prompt="few-shot", num_candidates=2, max_attempts=3, max_new_tokens=12, actors=1
    )
    out = invert(facts, config)
    assert [r["index"] for r in out] == [0, 1]
    for record in out:
        provenance = record["provenance"]
        assert provenance["prompt"] == "few-shot" and len(provenance["seeds"]) == record["attempts"]
        # One prompt per attempt used, each with its own examples.
        assert len(provenance["prompts"]) == record["attempts"]
        assert all(p.endswith(f"Answer: {record['answer']}\nWrong answer:") for p in provenance["prompts"])
        assert all("\n\n" not in c for c in record["candidates"])
    # Attempt 0 of both facts shows the same examples.
    first = [r["provenance"]["prompts"][0] for r in out]
    assert first[0][: first[0].rindex("Question: ")] == first[1][: first[1].rindex("Question: ")]
