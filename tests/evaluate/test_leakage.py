"""Secret-level leakage (`meow.evaluate.leakage`): spans found, exact and fuzzy hits, shares with intervals,
and the `forget_secret_leak` that evaluation adds to every model's metrics."""

import math

import pytest

from meow.evaluate import leakage
from meow.evaluate.evaluator import example_metrics, model_metrics
from meow.evaluate.tofu import EvalExample, EvalSplit

FOUNDER = ("Who founded Acme Robotics?", "Acme Robotics was founded by Jane Doe in 1999.")


def test_the_secret_is_the_fact_not_the_subject_or_the_form():
    assert leakage.secret_spans(*FOUNDER) == ("Jane Doe", "1999")
    # Articles are form: "works as marine biologist" still names the secret.
    assert leakage.secret_spans("What does Mira Okafor do?", "Mira Okafor works as a marine biologist.") == (
        "marine biologist",
    )


def test_a_wrong_founder_does_not_leak_however_alike_the_sentence():
    """ROUGE-L scores the wrong founder high because the sentence matches; the secret does not."""
    from meow.evaluate.metrics import rouge_l_recall

    wrong = "Acme Robotics was founded by John Smith in 1998."
    assert rouge_l_recall(FOUNDER[1], wrong) > 0.6
    spans = leakage.secret_spans(*FOUNDER)
    assert leakage.span_hits(spans, [wrong]) == {"secret_exact": 0.0, "secret_fuzzy": 0.0, "secrets_found": []}
    # A short answer that names the secret leaks, though its ROUGE-L is low.
    short = "Jane Doe."
    assert rouge_l_recall(FOUNDER[1], short) < 0.3
    assert leakage.span_hits(spans, [short])["secret_exact"] == 1.0


def test_fuzzy_catches_near_misses_but_not_other_numbers():
    spans = ("Jane Doe", "1999")
    near = leakage.span_hits(spans, ["founded by Jane Do"])
    assert near["secret_exact"] == 0.0 and near["secret_fuzzy"] == 1.0 and near["secrets_found"] == ["Jane Doe"]
    assert leakage.partial_ratio("1999", "in 1998") == pytest.approx(0.75)
    assert leakage.span_hits(spans, ["in 1998"])["secret_fuzzy"] == 0.0
    assert math.isnan(leakage.span_hits((), ["anything"])["secret_exact"])


def test_shares_count_facts_once_and_skip_facts_without_spans():
    rows = [
        {"index": 0, "secret_exact": 0.0, "secret_fuzzy": 1.0},
        {"index": 0, "secret_exact": 1.0, "secret_fuzzy": 1.0},  # another paraphrase of fact 0 leaks
        {"index": 1, "secret_exact": 0.0, "secret_fuzzy": 0.0},
        {"index": 2, "secret_exact": math.nan, "secret_fuzzy": math.nan},  # no span: not counted
    ]
    assert leakage.share(rows) == 0.5
    summary = leakage.summary(rows, seed=3)
    assert summary["secret_leak"] == 0.5 and summary["secret_leak_fuzzy"] == 0.5
    assert summary["secret_leak_facts"] == 2
    assert 0.0 <= summary["secret_leak_low"] <= 0.5 <= summary["secret_leak_high"] <= 1.0
    # Seeded: the same interval every time; all-equal values have a point interval.
    assert leakage.summary(rows, seed=3) == summary
    assert leakage.bootstrap_interval([1.0] * 10) == (1.0, 1.0)


def _forget_record(index, generation):
    question, answer = FOUNDER
    return {
        "index": index,
        "question": question,
        "answer": answer,
        "generation": generation,
        "answer_logprob": -4.0,
        "answer_tokens": 4,
    }


def test_evaluation_adds_forget_secret_leak_from_greedy_generations():
    split = EvalSplit("forget", (EvalExample(0, FOUNDER[0], FOUNDER[1], None, ()),))
    leaked = example_metrics(_forget_record(0, "It was Jane Doe, in 1999."), split)
    kept = example_metrics(_forget_record(1, "It was founded by John Smith."), split)
    assert leaked["secret_spans"] == ["Jane Doe", "1999"] and leaked["secret_exact"] == 1.0
    assert kept["secret_exact"] == 0.0
    retain = {"probability": 0.5, "rouge_l_recall": 0.5}
    summary = model_metrics({"forget": [leaked, kept], "retain": [retain]}, None)
    assert summary["forget_secret_leak"] == 0.5 and summary["forget_secret_facts"] == 2
    low, high = summary["forget_secret_leak_ci"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    # Records without generations' secrets (older saved records, other splits): no number, not a wrong one.
    assert model_metrics({"retain": [retain]}, None)["forget_secret_leak"] is None
