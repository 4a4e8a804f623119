"""The leakage report: every attack's numbers for every model side by side, a verdict per attack, plots."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from meow.probe.attacks import Attack
from meow.probe.scoring import Row, paired_bootstrap

Direction = Literal["more", "same", "less"]
WORDS = {"more": "leaks more than", "same": "leaks about as much as", "less": "leaks less than"}


@dataclass
class Outcome:
    """One attack on one model: its rows and aggregate, or why it did not run."""

    rows: list[Row] = field(default_factory=list)
    aggregate: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None


@dataclass
class Verdict:
    attack: str
    metric: str
    line: str
    subject: str | None = None
    reference: str | None = None
    direction: Direction | None = None
    # statistic(subject) - statistic(reference): the point estimate and its 95% bootstrap interval
    difference: float | None = None
    interval: tuple[float, float] | None = None


def verdict(
    name: str, attack: Attack, outcomes: dict[str, Outcome], subject: str, references: tuple[str, ...], seed: int
) -> Verdict:
    """Does `subject` leak more, as much as, or less than the first available reference?

    "Same" unless the paired bootstrap's 95% interval of the difference excludes zero.
    """
    metric = attack.headline
    ran = {m for m, o in outcomes.items() if o.skipped is None and o.rows}
    reference = next((r for r in references if r in ran and r != subject), None)
    if subject not in ran or reference is None:
        missing = subject if subject not in ran else " or ".join(references)
        return Verdict(name, metric, f"{name}: no verdict ({missing} not probed by this attack)")
    a, b = outcomes[subject], outcomes[reference]
    difference = attack.statistic(a.rows) - attack.statistic(b.rows)
    low, high = paired_bootstrap(a.rows, b.rows, attack.statistic, seed=seed)
    direction: Direction = "more" if low > 0 else "less" if high < 0 else "same"
    line = (
        f"{name}: {subject} {WORDS[direction]} {reference} ({metric} {a.aggregate[metric]:.3f} vs "
        f"{b.aggregate[metric]:.3f}; 95% CI of the difference [{low:+.3f}, {high:+.3f}])"
    )
    return Verdict(name, metric, line, subject, reference, direction, difference, (low, high))


def write_report(
    out: Path,
    models: tuple[str, ...],
    attacks: dict[str, Attack],
    results: dict[str, dict[str, Outcome]],
    verdicts: dict[str, Verdict],
) -> dict:
    """leakage.json, leakage.md and PNG plots in `out`; returns what leakage.json holds."""
    summary = {
        "models": list(models),
        "attacks": {
            name: {
                "headline": attacks[name].headline,
                "models": {
                    m: o.aggregate if o.skipped is None else {"skipped": o.skipped} for m, o in results[name].items()
                },
                "verdict": verdicts[name].__dict__,
            }
            for name in attacks
        },
    }
    (out / "leakage.json").write_text(json.dumps(_finite(summary), indent=2, allow_nan=False) + "\n")
    (out / "leakage.md").write_text(markdown(models, attacks, results, verdicts))
    plot(out, models, attacks, results)
    return summary


def markdown(
    models: tuple[str, ...],
    attacks: dict[str, Attack],
    results: dict[str, dict[str, Outcome]],
    verdicts: dict[str, Verdict],
) -> str:
    head = "| attack | metric | " + " | ".join(models) + " |\n|---|---|" + "---|" * len(models) + "\n"
    lines = ["# Leakage report", "", "Higher = more of the forget set revealed. " + _legend(), "", head.rstrip("\n")]
    for name, attack in attacks.items():
        lines.append(
            f"| {name} | {attack.headline} | "
            + " | ".join(_cell(results[name][m], attack.headline) for m in models)
            + " |"
        )
    lines += ["", "## Verdicts", ""] + [f"- {verdicts[name].line}" for name in attacks]
    for name in attacks:
        metrics = sorted({k for o in results[name].values() for k in o.aggregate})
        lines += ["", f"## {name}", "", head.rstrip("\n")]
        lines += [f"| {name} | {k} | " + " | ".join(_cell(results[name][m], k) for m in models) + " |" for k in metrics]
        lines += [f"- {m}: skipped ({o.skipped})" for m, o in results[name].items() if o.skipped]
    return "\n".join(lines) + "\n"


def _legend() -> str:
    return (
        "ROUGE-L recall of the true answer (rouge-score, stemmed) and exact-match rate (the whole answer "
        "verbatim in the output) for the extraction attacks; ROC AUC of forget vs holdout answers for "
        "membership inference (0.5 = indistinguishable)."
    )


def _cell(outcome: Outcome, metric: str) -> str:
    if outcome.skipped is not None:
        return "skipped"
    value = outcome.aggregate.get(metric)
    return "" if value is None or math.isnan(value) else f"{value:.3f}"


def plot(
    out: Path, models: tuple[str, ...], attacks: dict[str, Attack], results: dict[str, dict[str, Outcome]]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(attacks)
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    for j, model in enumerate(models):
        values = [results[n][model].aggregate.get(attacks[n].headline, np.nan) for n in names]
        ax.bar(np.arange(len(names)) + j * width, values, width, label=model)
    ax.set_xticks(np.arange(len(names)) + width * (len(models) - 1) / 2)
    ax.set_xticklabels([f"{n}\n({attacks[n].headline})" for n in names], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("leakage (higher = more)")
    ax.legend()
    ax.set_title("Headline leakage per attack")
    fig.tight_layout()
    fig.savefig(out / "leakage.png", dpi=120)
    plt.close(fig)

    if "prefix" in results:
        fractions = attacks["prefix"].config.fractions
        fig, ax = plt.subplots(figsize=(5, 4))
        for model in models:
            aggregate = results["prefix"][model].aggregate
            if aggregate:
                ax.plot(fractions, [aggregate[f"rouge_l_recall@{f:g}"] for f in fractions], marker="o", label=model)
        ax.set_xlabel("share of the true answer given")
        ax.set_ylabel("ROUGE-L recall of the rest")
        ax.set_ylim(0, 1)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "prefix.png", dpi=120)
        plt.close(fig)

    if "membership" in results:
        from meow.probe.scoring import auc

        fig, ax = plt.subplots(figsize=(5, 4))
        for model in models:
            rows = results["membership"][model].rows
            if rows:
                fpr, tpr = _roc([r["member"] for r in rows], [-r["loss"] for r in rows])
                score = auc([r["member"] for r in rows], [-r["loss"] for r in rows])
                ax.plot(fpr, tpr, label=f"{model} (AUC {score:.2f})")
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.set_xlabel("holdout answers flagged (FPR)")
        ax.set_ylabel("forget answers flagged (TPR)")
        ax.set_title("Membership inference by loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "membership.png", dpi=120)
        plt.close(fig)


def _roc(members: list[bool], scores: list[float]) -> tuple[list[float], list[float]]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    positives = sum(members) or 1
    negatives = (len(members) - sum(members)) or 1
    fpr, tpr, tp, fp = [0.0], [0.0], 0, 0
    for i in order:
        tp, fp = tp + members[i], fp + (not members[i])
        fpr.append(fp / negatives)
        tpr.append(tp / positives)
    return fpr, tpr


def _finite(value):
    """NaN (an AUC without both classes, a mean of nothing) as JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
