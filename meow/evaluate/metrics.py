"""The TOFU metrics as pure functions of per-example numbers (method spec 2.2-2.3).

Everything here works on what the evaluator saves per example (summed answer log-probs, token
counts, generations), so any metric can be recomputed from `per_example/*.jsonl` without a model.
Names follow the reference: TOFU's `evaluate_util.py` / `aggregate_eval_stat.py` and
open-unlearning's `probability`, `probability_w_options`, `rouge`, `truth_ratio`, `ks_test`,
`hm_aggregate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np

# The 9 numbers model utility is the harmonic mean of: {retain, real authors, world facts} x
# {probability, ROUGE-L recall, truth ratio}. Forget-set metrics are deliberately excluded.
UTILITY_SPLITS = ("retain", "real_authors", "world_facts")
SPLIT_METRICS = ("probability", "rouge_l", "truth_ratio")


def mean_loss(logprob_sum: float, tokens: int) -> float:
    """L̄(y|q): length-normalised negative log-likelihood of the label tokens (EOS included)."""
    if tokens < 1:
        raise ValueError("a scored answer has at least one label token")
    return -logprob_sum / tokens


def probability(loss: float) -> float:
    """P̃(y|q) = exp(-L̄): the length-normalised probability (geometric mean per-token probability)."""
    return math.exp(-loss)


def probability_w_options(answer_loss: float, option_losses: Sequence[float]) -> float:
    """Real authors / world facts: P̃(a) / (P̃(a) + Σ_j P̃(wrong option j))."""
    answer = probability(answer_loss)
    return answer / (answer + sum(probability(loss) for loss in option_losses))


def truth_ratio(base_loss: float, perturbed_losses: Sequence[float]) -> float:
    """R = [Π_j P̃(perturbed_j)]^(1/m) / P̃(base) = exp(L̄(base) - mean_j L̄(perturbed_j)).

    The GEOMETRIC mean of the perturbed probabilities (mean of their losses in log space), as in
    TOFU's aggregate_eval_stat.py and open-unlearning; TOFU's utils.py and MEOW's end-of-run message
    use the arithmetic mean of probabilities instead, which inflates model utility (spec 2.3).
    """
    if not perturbed_losses:
        raise ValueError("a truth ratio needs at least one perturbed answer")
    return math.exp(base_loss - float(np.mean(perturbed_losses)))


def closer_to_1_better(ratios: Sequence[float]) -> float:
    """Forget split: mean of min(R, 1/R); 1 means the model cannot tell the true answer from false ones."""
    r = np.asarray(ratios, dtype=float)
    return float(np.mean(np.minimum(r, 1 / r)))


def true_better(ratios: Sequence[float]) -> float:
    """Retain / real authors / world facts: mean of max(0, 1 - R); 1 means true answers are far more likely."""
    r = np.asarray(ratios, dtype=float)
    return float(np.mean(np.maximum(0.0, 1 - r)))


@cache
def _rouge_scorer():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(reference: str, generation: str) -> float:
    """ROUGE-L recall of a generation against the ground-truth answer (rouge-score, Porter stemming)."""
    return _rouge_scorer().score(reference, generation)["rougeL"].recall


def ks_test(unlearned_ratios: Sequence[float], oracle_ratios: Sequence[float]) -> float:
    """Forget quality: p-value of the two-sample KS test between the raw forget truth ratios of the
    evaluated model and of the retain-only oracle. High = indistinguishable from never having seen
    the forget set. With 40 forget questions the p-value takes few, coarse values."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(np.asarray(unlearned_ratios, dtype=float), np.asarray(oracle_ratios, dtype=float)).pvalue)


def hm_aggregate(values: Sequence[float]) -> float:
    """Harmonic mean (scipy's, as the reference); 0 as soon as any value is 0."""
    from scipy.stats import hmean

    return float(hmean(np.asarray(values, dtype=float)))


def model_utility(split_metrics: Mapping[str, Mapping[str, float]]) -> float:
    """Harmonic mean of the 9 utility numbers; `split_metrics[split][metric]`."""
    return hm_aggregate([split_metrics[s][m] for s in UTILITY_SPLITS for m in SPLIT_METRICS])


def best_forget_quality(frontier: Sequence[Mapping[str, float | None]], target_utility: float, min_ratio: float) -> float | None:
    """The highest forget quality along a method's frontier among the points whose model utility is at
    least `min_ratio` of the target's (None when no point keeps that much utility)."""
    kept = [
        p["forget_quality"]
        for p in frontier
        if p.get("forget_quality") is not None
        and p.get("model_utility") is not None
        and p["model_utility"] >= min_ratio * target_utility
    ]
    return max(kept) if kept else None
