"""The leakage report: every attack's numbers for every model side by side, a verdict per attack, plots.

The report names the forget set it probed (source, field mapping, record count, sha256 of the
probed records) and the non-members membership inference compared them with, and ends with the
per-fact table: each fact's question, its secret spans, what each model answered (the direct
attack's greedy answer) and which attacks made it name the secret.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from meow.data import QARecord
from meow.evaluate import leakage
from meow.probe.base import Attack, secret
from meow.probe.scoring import Row, paired_bootstrap

Direction = Literal["more", "same", "less"]
WORDS = {"more": "leaks more than", "same": "leaks about as much as", "less": "leaks less than"}
# What the verdict's reference is: a model that never learned the facts, or only the model before unlearning.
REFERENCE_KIND = {
    "oracle": "never trained on the forget set",
    "base": "the model before it learned the facts",
    "original": "the model before unlearning, NOT a model that never saw the facts: serve one and name it "
    "with --reference for a verdict that means forgetting",
}



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
    # Forget-quality-style distribution test against the reference, where the attack has one.
    ks_pvalue: float | None = None


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
    kind = REFERENCE_KIND.get(reference, "the reference named with --reference")
    line = (
        f"{name}: {subject} {WORDS[direction]} {reference} ({metric} {_value(a.aggregate, metric)} vs "
        f"{_value(b.aggregate, metric)}; 95% CI of the difference [{low:+.3f}, {high:+.3f}]; {reference}: {kind})"
    )
    test = getattr(attack, "distribution_test", None)
    p = test(a.rows, b.rows) if test else None
    if p is not None:
        line += f"; KS p = {p:.3g} of the per-fact loss gaps to counterfactual twins (1 = like {reference})"
    return Verdict(name, metric, line, subject, reference, direction, difference, (low, high), p)


def _value(aggregate: dict[str, float], metric: str) -> str:
    """`0.500`, with its 95% interval when the aggregate has one: `0.500 [0.200, 0.800]`."""
    value = aggregate.get(metric, math.nan)
    low, high = aggregate.get(f"{metric}_low"), aggregate.get(f"{metric}_high")
    if low is None or high is None or math.isnan(low):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def fact_table(
    forget: list[QARecord], models: tuple[str, ...], results: dict[str, dict[str, Outcome]]
) -> list[dict]:
    """Per fact: question, answer, secret spans and, per model, the direct answer and the attacks that leaked
    the secret (exactly or fuzzily)."""
    facts = []
    for record in forget:
        fact = {"index": record.index, "question": record.question, "answer": record.answer}
        fact["secret"] = list(secret(record))
        fact["models"] = {}
        for model in models:
            said, leaked, fuzzy = None, [], []
            for name, outcomes in results.items():
                rows = [r for r in outcomes[model].rows if r.get("index") == record.index and "output" in r]
                said = said if said is not None or name != "direct" or not rows else rows[0]["output"]
                if leakage.per_fact(rows, leakage.EXACT).get(record.index):
                    leaked.append(name)
                elif leakage.per_fact(rows, leakage.FUZZY).get(record.index):
                    fuzzy.append(name)
            fact["models"][model] = {"said": said, "leaked_by": leaked, "fuzzy_by": fuzzy}
        facts.append(fact)
    return facts


def write_report(
    out: Path,
    models: tuple[str, ...],
    attacks: dict[str, Attack],
    results: dict[str, dict[str, Outcome]],
    verdicts: dict[str, Verdict],
    probed: dict | None = None,
    forget: list[QARecord] | None = None,
) -> dict:
    """leakage.json, leakage.md, facts.jsonl and PNG plots in `out`; returns what leakage.json holds.

    `probed` says what was probed (`forget` set identity, `nonmembers`, `reference`); `forget` are the
    probed records, for the per-fact table."""
    facts = fact_table(forget or [], models, results)
    with open(out / "facts.jsonl", "w") as f:
        for fact in facts:
            f.write(json.dumps(fact) + "\n")
    summary = {
        **(probed or {}),
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
    (out / "leakage.md").write_text(markdown(models, attacks, results, verdicts, probed or {}, facts))
    plot(out, models, attacks, results)
    return summary


def markdown(
    models: tuple[str, ...],
    attacks: dict[str, Attack],
    results: dict[str, dict[str, Outcome]],
    verdicts: dict[str, Verdict],
    probed: dict | None = None,
    facts: list[dict] | None = None,
) -> str:
    head = "| attack | metric | " + " | ".join(models) + " |\n|---|---|" + "---|" * len(models) + "\n"
    lines = ["# Leakage report", "", *_probed(probed or {})]
    lines += ["Higher = more of the forget set revealed. " + _legend(), "", head.rstrip("\n")]
    for name, attack in attacks.items():
        lines.append(
            f"| {name} | {attack.headline} | "
            + " | ".join(_cell(results[name][m], attack.headline) for m in models)
            + " |"
        )
    lines += ["", "## Verdicts", ""] + [f"- {verdicts[name].line}" for name in attacks]
    for name in attacks:
        metrics = sorted({k for o in results[name].values() for k in o.aggregate if not k.endswith(("_low", "_high"))})
        lines += ["", f"## {name}", "", head.rstrip("\n")]
        lines += [f"| {name} | {k} | " + " | ".join(_cell(results[name][m], k) for m in models) + " |" for k in metrics]
        lines += [f"- {m}: skipped ({o.skipped})" for m, o in results[name].items() if o.skipped]
    lines += _fact_lines(models, facts or [])
    return "\n".join(lines) + "\n"


def _probed(probed: dict) -> list[str]:
    lines = []
    forget = probed.get("forget")
    if forget:
        fields = f"question field `{forget['question_field']}`, answer field `{forget['answer_field']}`"
        lines.append(
            f"Forget set probed: `{forget['source']}` ({forget['records']} of {forget['records_in_source']} "
            f"records, {fields}; sha256 of the probed records `{forget['sha256']}`)."
        )
    nonmembers = probed.get("nonmembers")
    if nonmembers:
        count = nonmembers["records"]
        lines.append(f"Non-members for membership inference: {nonmembers['description']} ({count} records).")
    if probed.get("reference"):
        lines.append(f"Reference: {probed['reference']}.")
    return [*lines, ""] if lines else []


def _fact_lines(models: tuple[str, ...], facts: list[dict]) -> list[str]:
    from meow.report.leakage import facts_table

    legend = (
        "The secret is the answer's fact-bearing spans; a model *leaked* a fact when its output under an attack "
        "names one of them (exactly; *fuzzy*: partial ratio >= 0.9). Answers are the direct attack's."
    )
    return ["", "## Per fact", "", *facts_table(models, facts, legend)] if facts else []


def _legend() -> str:
    return (
        "Extraction attacks: `secret_leak`, the share of facts whose secret spans (names, dates, numbers, "
        "places, titles) the output names, with its 95% bootstrap interval over facts (`secret_leak_fuzzy`: "
        "partial ratio >= 0.9); ROUGE-L recall of the true answer (rouge-score, stemmed) and exact-match "
        "rate (the whole answer verbatim in the output) below. Membership inference: ROC AUC of forget vs "
        "non-member answers (0.5 = indistinguishable)."
    )


def _cell(outcome: Outcome, metric: str) -> str:
    if outcome.skipped is not None:
        return "skipped"
    value = outcome.aggregate.get(metric)
    return "" if value is None or math.isnan(value) else _value(outcome.aggregate, metric)


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
