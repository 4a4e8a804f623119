"""Per-example leakage scores and the statistics over them: ROUGE-L recall, exact match, MIA, AUC, bootstrap."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from meow.evaluate.metrics import rouge_l_recall

Row = dict[str, Any]


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: how exact matches are compared."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def answer_scores(reference: str, output: str) -> dict[str, float]:
    """How much of the reference an output reveals.

    `exact_match` is 1 when the whole reference appears verbatim (after `normalise`) in the output,
    which also counts an answer wrapped in extra words.
    """
    return {
        "rouge_l_recall": rouge_l_recall(reference, output),
        "exact_match": float(normalise(reference) in normalise(output)),
    }


def mean_loss(logprobs: Sequence[float]) -> float:
    return -float(np.mean(logprobs))


def min_k_prob(logprobs: Sequence[float], k: float) -> float:
    """Min-K% Prob (Shi et al. 2023): mean log-prob of the k% least likely tokens; higher = more member-like."""
    values = np.sort(np.asarray(logprobs, dtype=float))
    return float(np.mean(values[: max(1, math.ceil(k * len(values)))]))


def auc(members: Sequence[bool], scores: Sequence[float]) -> float:
    """ROC AUC of `scores` (higher = member) separating members from non-members; ties count half."""
    from scipy.stats import rankdata

    labels = np.asarray(members, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def paired_bootstrap(
    subject: list[Row],
    reference: list[Row],
    statistic: Callable[[list[Row]], float],
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% interval of statistic(subject) - statistic(reference) over resampled examples.

    Examples (rows sharing `index`, and `member` where present) are drawn with replacement, the
    same draw for both models, within each `member` group, so a paired design stays paired and
    a membership AUC keeps both classes.
    """

    def groups(rows: list[Row]) -> dict[tuple, list[Row]]:
        out: dict[tuple, list[Row]] = {}
        for row in rows:
            out.setdefault((row.get("member"), row["index"]), []).append(row)
        return out

    a, b = groups(subject), groups(reference)
    keys = sorted(a.keys() & b.keys(), key=str)
    strata: dict[Any, list[tuple]] = {}
    for key in keys:
        strata.setdefault(key[0], []).append(key)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        drawn = [s[i] for s in strata.values() for i in rng.integers(0, len(s), len(s))]
        diffs.append(statistic([r for k in drawn for r in a[k]]) - statistic([r for k in drawn for r in b[k]]))
    low, high = np.nanpercentile(diffs, [2.5, 97.5])
    return float(low), float(high)
