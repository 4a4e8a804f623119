"""Structured inversion: the answer's sentence and subject kept, its fact-bearing spans replaced."""

from meow.data import QARecord, tofu_rows
from meow.data.spans import contains_span, fact_spans
from meow.invert.quality import fact_quality, shares
from meow.invert.structured import cut_infill, mutate_numeric, structured_invert, substitute

import random

FACT = QARecord(0, "In which city and country was Basil Mahfouz Al-Kuwaiti born?", "Basil Mahfouz Al-Kuwaiti was born in Kuwait City, Kuwait.")
CUSTOM = QARecord(7, "Who founded Acme Robotics?", "Acme Robotics was founded in 1987 by Maria Keller in Zurich.")


def test_typed_candidates_keep_the_subject_and_drop_every_secret():
    records = [FACT, CUSTOM, *tofu_rows("forget01")[:6]]
    out = structured_invert(records, wanted=4, seed=42, infill=None)
    for record, fact in zip(records, out):
        secrets = [s.text for s in fact_spans(record.question, record.answer)]
        for candidate in fact["candidates"]:
            assert not any(contains_span(candidate, s) for s in secrets), (candidate, secrets)
            assert candidate != record.answer
        assert len({c.lower() for c in fact["candidates"]}) == len(fact["candidates"]), "candidates differ"
    born = out[0]["candidates"]
    assert len(born) == 4 and all(c.startswith("Basil Mahfouz Al-Kuwaiti was born in ") for c in born)
    custom = out[1]["candidates"]
    assert len(custom) == 4 and all(c.startswith("Acme Robotics was founded in ") for c in custom)
    quality = shares(q for r, f in zip(records, out) for q in fact_quality({"question": r.question, "answer": r.answer, **f}, 0.7))
    assert quality["coherent"] == 1.0, quality


def test_deterministic_under_the_seed():
    records = tofu_rows("forget01")[:4]
    first = structured_invert(records, 4, 42, None)
    assert structured_invert(records, 4, 42, None) == first
    assert structured_invert(records, 4, 43, None) != first


def test_infills_are_cut_where_the_span_ended_and_secrets_rejected():
    span = fact_spans(FACT.question, FACT.answer)[0]
    assert span.text == "Kuwait City"
    assert cut_infill("Lyon, France. He later moved", FACT, span) == "Lyon"

    def infill(prompts, seeds):
        assert all(p.startswith(f"Question: {FACT.question}\nAnswer: Basil Mahfouz Al-Kuwaiti was born in") for p in prompts)
        # Half restate the secret, half are usable places.
        return ["Kuwait City, Kuwait." if s % 2 else "Lyon, France." for s in seeds]

    out = structured_invert([FACT], wanted=2, seed=1, infill=infill, samples=4)[0]
    assert out["rejected"].get("restatement", 0) + out["rejected"].get("secret", 0) > 0
    assert any("Lyon" in c for c in out["candidates"])
    assert not any(contains_span(c, "Kuwait City") for c in out["candidates"])


def test_numbers_and_articles():
    rng = random.Random(0)
    decade = mutate_numeric("the early 1980s", rng)
    assert decade.startswith("the early ") and decade.endswith("0s") and decade != "the early 1980s"
    date = mutate_numeric("8th of September, 1956", rng)
    assert "September" not in date and "1956" not in date
    record = QARecord(1, "What was her job?", "She was an architect.")
    (span,) = fact_spans(record.question, record.answer)
    assert substitute(record.answer, [span], {"an architect": "a baker"}) == "She was a baker."


def test_descriptive_spans_take_fitting_phrases_of_other_subjects():
    style = QARecord(0, "What is Ann Lee's writing style known for?", "Ann Lee's writing style is known for its lyrical prose and for its plot lines.")
    own = QARecord(1, "What themes does Ann Lee explore?", "Ann Lee explores themes of quiet resilience and family memories.")
    other = QARecord(2, "What themes does Tom Ode explore?", "Tom Ode explores themes of urban solitude and sharp satires.")
    out = structured_invert([style, own, other], wanted=4, seed=42, infill=None)
    candidates = out[0]["candidates"]
    assert len(candidates) >= 2 and all(c.startswith("Ann Lee's writing style is known for ") for c in candidates)
    assert out[0]["sources"]["its plot lines"] == {"infill": 0, "typed": 0, "pool": 2}
    singular, plural = ("urban solitude", "quiet resilience"), ("sharp satires", "family memories")
    # The other subject's phrases are drawn first; Ann Lee's own come after them.
    assert "urban solitude" in candidates[0]
    for candidate in candidates:
        assert "lyrical prose" not in candidate and "plot lines" not in candidate
        # "its lyrical prose" (singular) takes a singular phrase, "its plot lines" a plural one.
        assert sum(p in candidate for p in singular) == 1 and sum(p in candidate for p in plural) == 1, candidate
        assert " its " not in candidate
