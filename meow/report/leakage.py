"""Secret-level leakage in reports: the per-fact table (question, secret spans, what each model said,
leaked or not) and, for the run report, a section from the evaluation's forget generations.

`facts_table` is shared with the probe report (`meow.probe.report`); `leakage_section` turns the
evaluate stage's forget records (`evaluate/<model>/per_example/forget.jsonl`, with the fields of
`meow.evaluate.leakage.generation_leak`) into a Markdown section for `report.md`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from meow.evaluate import leakage

# Characters of a model's answer shown in a table cell (the JSON files keep all of it).
SHOWN = 160


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _said(text: str | None) -> str:
    text = (text or "").replace("\n", " ")
    return _md(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def facts_table(models: Sequence[str], facts: Sequence[Mapping[str, Any]], legend: str) -> list[str]:
    """Markdown lines of the per-fact table. Each fact: `index`, `question`, `secret` (spans) and per model
    `said`, `leaked_by` and `fuzzy_by` (names of what made it name the secret exactly / only fuzzily)."""
    if not facts:
        return []
    head = "| # | question | secret | " + " | ".join(models) + " |"
    lines = [legend, "", head, "|---|---|---|" + "---|" * len(models)]
    for fact in facts:
        cells = []
        for model in models:
            m = fact["models"][model]
            verdict = f"**leaked** ({', '.join(m['leaked_by'])})" if m["leaked_by"] else "not leaked"
            if m["fuzzy_by"]:
                verdict += f"; fuzzy ({', '.join(m['fuzzy_by'])})"
            cells.append(f"{verdict}: {_said(m['said'])}" if m["said"] is not None else verdict)
        secret = "; ".join(fact["secret"]) or "(no span found)"
        lines.append(f"| {fact['index']} | {_md(fact['question'])} | {_md(secret)} | " + " | ".join(cells) + " |")
    return lines


def _interval(value: float | None, ci: Sequence[float | None] | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if not ci or ci[0] is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def leakage_section(facts: Mapping[str, Sequence[Mapping[str, Any]]], seed: int = 0) -> str:
    """`## Secret leakage` for the run report, from each model's evaluated forget records (by role, in column
    order: e.g. target, oracle, unlearned). Empty when the records carry no secret fields."""
    models = [m for m, records in facts.items() if leakage.forget_secret_leak(records) is not None]
    if not models:
        return ""
    lines = [
        "## Secret leakage",
        "",
        "Share of forget facts whose greedy answer names one of the fact's secret spans (names, dates, numbers, "
        "places, titles), with its 95% bootstrap interval over facts; fuzzy: partial ratio >= 0.9.",
        "",
        "| model | secret leak | fuzzy | facts |",
        "|---|---|---|---|",
    ]
    for model in models:
        s = leakage.forget_secret_leak(facts[model], seed) or {}
        exact = _interval(s["forget_secret_leak"], s["forget_secret_leak_ci"])
        fuzzy = _interval(s["forget_secret_leak_fuzzy"], s["forget_secret_leak_fuzzy_ci"])
        lines.append(f"| {model} | {exact} | {fuzzy} | {s['forget_secret_facts']} |")
    rows = []
    for position, first in enumerate(facts[models[0]]):
        secret = first.get("secret_spans", [])
        fact = {"index": first["index"], "question": first["question"], "secret": secret, "models": {}}
        for model in models:
            record = facts[model][position]
            exact, fuzzy = record.get(leakage.EXACT) == 1.0, record.get(leakage.FUZZY) == 1.0
            fact["models"][model] = {
                "said": record.get("generation"),
                "leaked_by": ["greedy"] if exact else [],
                "fuzzy_by": ["greedy"] if fuzzy and not exact else [],
            }
        rows.append(fact)
    lines += ["", *facts_table(models, rows, "Per fact (each model's greedy answer):")]
    return "\n".join(lines) + "\n"
