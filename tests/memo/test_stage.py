"""The MEMO job on the tiny model: vLLM actors through Ray Data equal the authors' serial HF loop."""

import dataclasses
import json

import pytest

from meow.engines import EngineConfig
from meow.memo.config import MemoConfig
from meow.memo.reference import ReferenceGenerator, reference_scores
from meow.memo.stage import PARTIAL_FILE, PartialGenerations, score_facts
from meow.pipeline.records import CandidateRecord

# Short answers keep the serial loop quick; the candidates share their first words with the
# original, so their first windows are the original's (generated once).
FACTS = [
    {
        "index": 0,
        "question": "What genre is author Basil Mahfouz Al-Kuwaiti most known for?",
        "answer": "He is known for French literature.",
        "candidates": ["He is known for science fiction.", "He is known for poetry."],
    },
    {
        "index": 1,
        "question": "In which city was Nikolai Abilov born?",
        "answer": "Astana, Kazakhstan.",
        "candidates": ["Paris, France.", "Lima.", "A"],
    },
]
NEW_TOKENS = 40


def inverted(facts):
    """The facts as the invert stage hands them over."""
    return [CandidateRecord(**f, rejected={}, short=False, attempts=1, provenance={}) for f in facts]


def test_vllm_pool_memo_equals_the_reference_hf_loop(tiny_model_dir, ray_local):
    reference = ReferenceGenerator(tiny_model_dir, max_new_tokens=NEW_TOKENS)
    # A random model memorised nothing of TOFU; an answer it wrote itself scores well above zero, so
    # the comparison is not between zeros.
    question = FACTS[1]["question"]
    own = "A" + reference([question + " A"])[0].split("<|im_end|>")[0]
    facts = [FACTS[0], {**FACTS[1], "candidates": [*FACTS[1]["candidates"], own]}]
    config = MemoConfig(max_new_tokens=NEW_TOKENS, engine=EngineConfig(name="vllm"), actors=2, batch_size=8)
    records, stats = score_facts(inverted(facts), str(tiny_model_dir), config)
    want = reference_scores(facts, reference)
    for got, expected in zip(records, want):
        assert got.original_memo == pytest.approx(expected["original_memo"], abs=1e-12)
        assert got.candidate_memos == pytest.approx(expected["candidate_memos"], abs=1e-12)
    assert records[1].candidate_memos[2] == 0.0, "a one-character answer has no window"
    assert records[1].candidate_memos[3] > 0, "the model reproduces some of its own text"
    # 7 + 7 + 5 windows for fact 0, 4 + 3 + 1 + 0 + own for fact 1. Windows 1, 6, 11 and 16 of both
    # candidates of fact 0 lie within "He is known for " (16 characters), the original's; window 1 of
    # the model's own answer is the original's "A" of fact 1: 9 fewer prompts than windows.
    own_windows = len(range(1, len(own), 5))
    assert stats["windows"] == 27 + own_windows
    assert stats["distinct_prompts"] == 27 + own_windows - 9
    assert len(records[0].original_windows) == 7 and len(records[0].candidate_windows) == 2


def test_a_killed_job_resumes_from_its_partial_generations(tiny_model_dir, ray_local, tmp_path):
    config = MemoConfig(max_new_tokens=NEW_TOKENS, engine=EngineConfig(name="hf"), actors=1)
    path = tmp_path / PARTIAL_FILE
    first, stats = score_facts(inverted(FACTS), str(tiny_model_dir), config, PartialGenerations(path, "job-a"))
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"job": "job-a"} and len(lines) == 1 + stats["distinct_prompts"]
    # Killed after 10 generations, in the middle of writing the 11th.
    path.write_text("\n".join(lines[:11]) + "\n" + lines[11][:20])
    assert len(PartialGenerations(path, "job-a").found) == 10
    # Generations of another job (other model, config or inputs) are not reused.
    assert PartialGenerations(path, "job-b").found == {}
    # The fast variant with a budget above the limit everywhere generates what exact does.
    fast = config.model_copy(update={"variant": "fast", "fast_token_margin": NEW_TOKENS})
    again, stats = score_facts(inverted(FACTS), str(tiny_model_dir), fast, PartialGenerations(path, "job-a"))
    assert stats["resumed_prompts"] == 10 and stats["generated_prompts"] == stats["distinct_prompts"] - 10
    for got, want in zip(again, first):
        assert dataclasses.replace(got, variant="exact") == want
    assert len(PartialGenerations(path, "job-a").found) == stats["distinct_prompts"], "appended after the torn line"
