"""Every TOFU metric against values computed by hand on toy numbers."""

import math

import pytest

from meow.evaluate import metrics
from meow.evaluate.evaluator import example_metrics, model_metrics, split_metrics
from meow.evaluate.tofu import EvalExample, EvalSplit


def test_length_normalised_loss_and_probability():
    # Three label tokens with log-probs summing to -6: mean loss 2, probability e^-2.
    assert metrics.mean_loss(-6.0, 3) == 2.0
    assert metrics.probability(2.0) == pytest.approx(0.1353352832)
    with pytest.raises(ValueError):
        metrics.mean_loss(0.0, 0)


def test_truth_ratio_uses_the_geometric_mean_of_perturbed_probabilities():
    # Base (paraphrase) loss 1 -> P = e^-1; perturbed losses 2 and 4 -> P = e^-2, e^-4.
    # Geometric: sqrt(e^-2 * e^-4) / e^-1 = e^-2 = 0.135335.
    # Arithmetic (the trap in TOFU's utils.py): (e^-2 + e^-4) / 2 / e^-1 = 0.208833.
    ratio = metrics.truth_ratio(1.0, [2.0, 4.0])
    assert ratio == pytest.approx(math.exp(-2))
    arithmetic = (math.exp(-2) + math.exp(-4)) / 2 / math.exp(-1)
    assert arithmetic == pytest.approx(0.208833, abs=1e-6)
    assert abs(ratio - arithmetic) > 0.07


def test_truth_ratio_aggregates():
    # Forget: min(R, 1/R) -> 0.5, 0.5, 1.0.
    assert metrics.closer_to_1_better([0.5, 2.0, 1.0]) == pytest.approx(2 / 3)
    # Others: max(0, 1 - R) -> 0.5, 0, 0.75.
    assert metrics.true_better([0.5, 2.0, 0.25]) == pytest.approx(1.25 / 3)


def test_probability_normalised_over_options():
    # P(answer) = 0.5, wrong options 0.25, 0.25, 0.125: 0.5 / 1.125.
    losses = [math.log(4), math.log(4), math.log(8)]
    assert metrics.probability_w_options(math.log(2), losses) == pytest.approx(0.5 / 1.125)


def test_rouge_l_is_recall_with_stemming():
    # Stemmed: reference [cat, are, run, fast], generation [the, cat, run]; LCS = 2 -> recall 2/4
    # (precision would be 2/3; without stemming cats/cat and running/runs would not match at all).
    assert metrics.rouge_l_recall("Cats are running fast", "the cat runs") == pytest.approx(0.5)
    assert metrics.rouge_l_recall("Paris", "") == 0.0


def test_forget_quality_is_the_ks_p_value():
    assert metrics.ks_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    # Fully separated samples of 3 and 3: exact two-sided p = 2 / C(6, 3) = 0.1.
    assert metrics.ks_test([0.1, 0.2, 0.3], [10.0, 20.0, 30.0]) == pytest.approx(0.1)


def test_model_utility_is_the_harmonic_mean_of_nine_numbers():
    values = {
        "retain": {"probability": 1.0, "rouge_l": 0.5, "truth_ratio": 0.25},
        "real_authors": {"probability": 1.0, "rouge_l": 0.5, "truth_ratio": 0.25},
        "world_facts": {"probability": 1.0, "rouge_l": 0.5, "truth_ratio": 0.25},
        # Forget metrics are not part of model utility.
        "forget": {"probability": 0.001, "rouge_l": 0.001, "truth_ratio": 0.001},
    }
    assert metrics.model_utility(values) == pytest.approx(9 / (3 * (1 + 2 + 4)))
    values["world_facts"] = {**values["world_facts"], "rouge_l": 0.0}
    assert metrics.model_utility(values) == 0.0


def _record(
    answer_loss, base_loss, perturbed_losses, tokens=4, answer="Cats are running fast", generation="the cat runs"
):
    """A saved per-example record whose answers have the given mean losses over `tokens` tokens."""
    return {
        "answer": answer,
        "generation": generation,
        "answer_logprob": -answer_loss * tokens,
        "answer_tokens": tokens,
        "base_logprob": -base_loss * tokens,
        "base_tokens": tokens,
        "perturbed_logprob": [-loss * tokens for loss in perturbed_losses],
        "perturbed_tokens": [tokens] * len(perturbed_losses),
    }


def _split(name):
    return EvalSplit(name, (EvalExample(0, "q", "a", "b", ("p",)),))


def test_per_example_metrics_from_saved_sums():
    forget = example_metrics(_record(math.log(2), 1.0, [2.0, 4.0]), _split("forget"))
    assert forget["probability"] == pytest.approx(0.5)
    assert forget["truth_ratio"] == pytest.approx(math.exp(-2))
    assert forget["rouge_l_recall"] == pytest.approx(0.5)
    # Real authors: probability over options; base = answer (loss log 2), options 0.25, 0.25, 0.125.
    options = example_metrics(
        _record(math.log(2), math.log(2), [math.log(4), math.log(4), math.log(8)]), _split("real_authors")
    )
    assert options["probability"] == pytest.approx(0.5 / 1.125)
    # R = geometric mean (0.25 * 0.25 * 0.125)^(1/3) / 0.5 = 2^(-7/3) / 2^-1 = 2^(-4/3).
    assert options["truth_ratio"] == pytest.approx(2 ** (-4 / 3))


def test_split_and_model_metrics():
    records = [
        {"probability": 0.2, "rouge_l_recall": 1.0, "truth_ratio": 0.5},
        {"probability": 0.4, "rouge_l_recall": 0.0, "truth_ratio": 2.0},
    ]
    assert split_metrics("forget", records) == {
        "probability": pytest.approx(0.3),
        "rouge_l": 0.5,
        "truth_ratio": 0.5,
        "n": 2,
    }
    assert split_metrics("retain", records)["truth_ratio"] == pytest.approx(0.25)
    per_example = {name: records for name in ("forget", "retain", "real_authors", "world_facts")}
    summary = model_metrics(per_example, oracle_forget=[0.5, 2.0])
    assert summary["forget_quality"] == 1.0
    # Utility: hmean of (0.3, 0.5, 0.25) three times = 3 / (1/0.3 + 2 + 4).
    assert summary["model_utility"] == pytest.approx(3 / (1 / 0.3 + 6))
    assert summary["forget_rouge_l"] == 0.5 and summary["forget_truth_ratio"] == 0.5
    assert model_metrics(per_example, oracle_forget=None)["forget_quality"] is None
