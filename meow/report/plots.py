"""The report's figures, drawn with matplotlib's Agg backend (no display) into PNG files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# One colour per role, the same in every figure.
COLORS = {"target": "#d62728", "oracle": "#2ca02c", "original": "#d62728", "inverted": "#1f77b4", "selected": "#ff7f0e"}
METHOD_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 3.8), dpi=110)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def colors(labels: Sequence[str]) -> dict[str, str]:
    """Fixed colours for the roles; the methods take the next free colour in order."""
    methods = iter(METHOD_COLORS * len(labels))
    return {label: COLORS.get(label) or next(methods) for label in labels}


def truth_ratio_histogram(ratios: Mapping[str, Sequence[float]], path: Path) -> Path:
    """Forget-set truth ratios R per model on a log axis: forgetting moves the unlearned model's
    distribution onto the oracle's (which is what forget quality, a KS test, measures)."""
    fig, ax = _figure()
    values = [np.asarray(v, dtype=float) for v in ratios.values()]
    low, high = min(v.min() for v in values), max(v.max() for v in values)
    bins = np.geomspace(min(low, 0.99), max(high, 1.01), 25)
    color = colors(list(ratios))
    for label, v in zip(ratios, values):
        ax.hist(v, bins=bins, histtype="step", linewidth=2, color=color[label], label=f"{label} (n={len(v)})")
    ax.axvline(1.0, color="black", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("truth ratio R = P(perturbed) / P(paraphrased), forget set")
    ax.set_ylabel("questions")
    ax.legend(fontsize=8)
    return _save(fig, path)


def memo_histogram(scores: Mapping[str, Sequence[float]], path: Path) -> Path:
    """MEMO of the original answers against the inverted candidates (and the ones selected)."""
    fig, ax = _figure()
    bins = np.linspace(0, 1, 21)
    color = colors(list(scores))
    for label, v in scores.items():
        ax.hist(v, bins=bins, alpha=0.5, density=True, color=color[label], label=f"{label} (n={len(v)})")
    ax.set_xlabel("MEMO (mean ROUGE-1 precision of continuations)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return _save(fig, path)


def quality_utility_scatter(
    points: Mapping[str, tuple[float, float]],
    path: Path,
    curves: Mapping[str, Sequence[tuple[float, float, float]]] | None = None,
) -> Path:
    """Forget quality (log) against model utility: the goal is the top right. `curves` are methods'
    frontiers, (epoch, FQ, MU) from the target onwards, drawn as lines marked with their epochs."""
    fig, ax = _figure()
    color = colors(list(points))
    for label, curve in (curves or {}).items():
        if len(curve) < 2:
            continue
        xs, ys = [fq for _, fq, _ in curve], [mu for _, _, mu in curve]
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color=color.get(label, "#333333"), alpha=0.7, zorder=2)
        for epoch, fq, mu in curve[1:-1]:
            ax.annotate(f"{epoch:g}", (fq, mu), textcoords="offset points", xytext=(3, -9), fontsize=7, alpha=0.8)
    for label, (fq, mu) in points.items():
        ax.scatter([fq], [mu], s=60, color=color[label], label=label, zorder=3)
        ax.annotate(label, (fq, mu), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("forget quality (KS p-value vs oracle)")
    ax.set_ylabel("model utility")
    ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)
