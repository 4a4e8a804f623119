"""The `report` stage: one run's results as `report.md`, a self-contained `report.html`, and `metrics.json`.

1. Collect what the run directory holds: the resolved spec, every stage's manifest (timings,
   versions, summaries), the evaluation (`evaluate/metrics.json` and the per-example files), and
   the records of `meow/pipeline/records.py`: MEMO scores, the inverted candidates with their
   quality checks and the selected inverted facts.
2. `metrics.json`: the benchmark's shape, `{"target", "oracle", "methods": {<method>}}`, each entry
   with forget quality, model utility, forget ROUGE-L and `wall_s`, plus `inversion`: the share of
   coherent candidates, all and selected.
3. Figures as PNG; the markdown links them, the HTML embeds them as base64 so it travels alone.

Forget-set text appears in the example generations: the report is the user's own artifact, never a log.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from meow import hardware
from meow.evaluate.metrics import best_forget_quality
from meow.invert.quality import CHECKS, shares
from meow.pipeline.records import CandidateRecord, ScoreRecord, SelectionRecord
from meow.pipeline.rundir import RunDir, versions
from meow.pipeline.spec import STAGE_ORDER, PipelineSpec
from meow.pipeline.stage import Stage, StageContext
from meow.report import plots
from meow.report.leakage import leakage_section

# Stages whose time it takes to produce the unlearned model (those the run has).
UNLEARNING_STAGES = ("invert", "memo", "select", "unlearn")
EXAMPLES = 5
ROLES = ("target", "oracle", "unlearned")


class ReportStage(Stage):
    name = "report"
    reads = ("prepare", "invert", "memo", "select", "unlearn", "evaluate")

    def config(self) -> dict[str, Any]:
        return {"examples": EXAMPLES}

    def run(self, ctx: StageContext) -> dict[str, Any]:
        files = write_report(ctx.run, self.spec, ctx.dir)
        return {"files": sorted(files)}


def write_report(run: RunDir, spec: PipelineSpec, out: Path) -> list[str]:
    """Write report.md, report.html, metrics.json and the figures into `out`; returns their names."""
    facts = collect(run, spec)
    metrics = dict(facts["metrics"])
    if (quality := inversion_quality(facts)) is not None:
        metrics["inversion"] = quality
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    figures = draw_figures(facts, out)
    (out / "report.md").write_text(markdown(facts, figures, link=lambda p: p.name))
    html = render_html(markdown(facts, figures, link=_data_uri), title=f"meow report: {spec.name}")
    (out / "report.html").write_text(html)
    return ["metrics.json", "report.md", "report.html", *(p.name for p in figures.values())]


# -- 1. collect ---------------------------------------------------------------------------------


def collect(run: RunDir, spec: PipelineSpec) -> dict[str, Any]:
    manifests = {s: m for s in STAGE_ORDER if s in spec.stages and (m := run.manifest(s)) is not None}
    evaluation = run.evaluation()
    per_example = {role: examples for role in ROLES if (examples := run.examples(role)) is not None}
    return {
        "spec": spec,
        "run": run,
        "manifests": manifests,
        "metrics": benchmark_entries(evaluation, manifests, spec),
        "per_example": per_example,
        "memo": run.read_records(ScoreRecord) if "memo" in manifests else [],
        "selected": run.read_records(SelectionRecord) if "select" in manifests else [],
        "candidates": run.read_records(CandidateRecord) if "invert" in manifests else [],
    }


def inversion_quality(facts: dict[str, Any]) -> dict[str, Any] | None:
    """Shares of coherent inverted facts (`meow.invert.quality`) among all candidates and the selected ones."""
    candidates: list[CandidateRecord] = facts["candidates"]
    if not candidates or candidates[0].quality is None:
        return None
    picked = {row.index: row.selected_candidates for row in facts["selected"]}
    selected = [r.quality[i] for r in candidates if r.quality for i in picked.get(r.index, [])]
    summary = (facts["manifests"].get("invert") or {}).get("summary") or {}
    return {
        "kind": summary.get("kind", "free-form"),
        "facts": len(candidates),
        "facts_without_candidates": sum(1 for r in candidates if not r.candidates),
        "candidates": shares(q for r in candidates for q in r.quality or []),
        "selected": shares(selected),
    }


def benchmark_entries(evaluation: dict[str, Any], manifests: dict[str, Any], spec: PipelineSpec) -> dict[str, Any]:
    """The evaluation's entries with `wall_s`: for a method, the seconds of the stages that produced
    the unlearned model; for target and oracle, their training time (also when this run reused them
    from the cache; null when the run did not prepare them)."""
    method_seconds = sum(manifests[s]["seconds"] for s in UNLEARNING_STAGES if s in manifests)
    prepared = (manifests.get("prepare") or {}).get("summary") or {}
    entries: dict[str, Any] = {}
    for role in ("target", "oracle"):
        if role in evaluation:
            entries[role] = {**evaluation[role], "wall_s": (prepared.get(role) or {}).get("train_seconds")}
    if "methods" in evaluation:
        entries["methods"] = {m: {**e, "wall_s": round(method_seconds, 2)} for m, e in evaluation["methods"].items()}
    return entries


def _models(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every evaluated model by display name: target, oracle, then the methods."""
    return {
        **{role: metrics[role] for role in ("target", "oracle") if role in metrics},
        **metrics.get("methods", {}),
    }


# -- 2. figures ---------------------------------------------------------------------------------


def draw_figures(facts: dict[str, Any], out: Path) -> dict[str, Path]:
    figures: dict[str, Path] = {}
    models = _models(facts["metrics"])
    points = {
        name: (e["forget_quality"], e["model_utility"])
        for name, e in models.items()
        if e.get("forget_quality") is not None and e.get("model_utility") is not None
    }
    curves = {
        name: [(p["epoch"], p["forget_quality"], p["model_utility"]) for p in e["frontier"] if p["forget_quality"] is not None]
        for name, e in models.items()
        if e.get("frontier")
    }
    if points:
        figures["quality_utility"] = plots.quality_utility_scatter(points, out / "quality_utility.png", curves)
    ratios = {
        _display(role, facts["spec"]): [r.get("truth_ratio") for r in per_example.get("forget", [])]
        for role, per_example in facts["per_example"].items()
    }
    ratios = {name: v for name, v in ratios.items() if v and all(x is not None for x in v)}
    if ratios:
        figures["truth_ratio"] = plots.truth_ratio_histogram(ratios, out / "truth_ratio.png")
    memo = memo_distributions(facts["memo"], facts["selected"])
    if memo:
        figures["memo"] = plots.memo_histogram(memo, out / "memo.png")
    return figures


def memo_distributions(scores: Sequence[ScoreRecord], selected: Sequence[SelectionRecord]) -> dict[str, list[float]]:
    """MEMO values of the original answers, of all inverted candidates, and of the selected ones."""
    if not scores:
        return {}
    found = {
        "original": [row.original_memo for row in scores],
        "inverted": [memo for row in scores for memo in row.candidate_memos],
    }
    picked = [memo for row in selected for memo in row.selected_memos]
    if picked:
        found["selected"] = picked
    return found


def _display(role: str, spec: PipelineSpec) -> str:
    return spec.unlearn.method if role == "unlearned" else role


# -- 3. documents -------------------------------------------------------------------------------


def markdown(facts: dict[str, Any], figures: dict[str, Path], link: Callable[[Path], str]) -> str:
    spec: PipelineSpec = facts["spec"]
    models = _models(facts["metrics"])
    parts = [
        f"# meow report: {spec.name}",
        f"Run directory: `{facts['run'].location}`  \nWritten {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
    ]

    parts.append("## Forget quality and model utility")
    parts.append(
        "Forget quality (FQ) is the KS-test p-value between the model's forget-set truth ratios and the "
        "retain-only oracle's (higher = closer to a model that never saw the forget set). Model utility (MU) is "
        "the harmonic mean of probability, ROUGE-L recall and truth ratio on retain, real authors and world "
        "facts. See docs/evaluation.md."
    )
    target_mu = (models.get("target") or {}).get("model_utility")
    rows = []
    for name, e in models.items():
        relative = e["model_utility"] / target_mu if target_mu and e.get("model_utility") is not None else None
        rows.append(
            [
                name,
                _num(e.get("forget_quality"), p_value=True),
                _num(e.get("model_utility")),
                _num(relative, digits=2, suffix="x"),
                _num(e.get("forget_rouge_l")),
                _num(e.get("forget_truth_ratio")),
                _num(e.get("forget_probability")),
                _num(e.get("wall_s"), digits=1),
                _num(e.get("eval_s"), digits=1) + (" (cached)" if e.get("eval_cached") else ""),
            ]
        )
    headers = ["model", "FQ", "MU", "MU / target", "forget ROUGE-L", "forget TR", "forget P", "wall s", "eval s"]
    parts.append(_table(headers, rows))
    if "quality_utility" in figures:
        parts.append(f"![forget quality vs model utility]({link(figures['quality_utility'])})")
    for name, e in models.items():
        if len(e.get("frontier") or []) > 2:
            parts.append(f"### Frontier: {name} along its training")
            parts.append(
                "Forget quality and model utility of the model after each whole epoch (`unlearn.train.save_epochs`), "
                "from the target (epoch 0) to the final model; the line in the figure above. Intermediate points "
                "may be evaluated in bf16 (`evaluate.frontier_dtype`), the target and the final model are not."
            )
            rows = [
                [f"{p['epoch']:g}", _num(p["forget_quality"], p_value=True), _num(p["model_utility"]),
                 _num(p["model_utility"] / target_mu if target_mu and p["model_utility"] is not None else None, 2, suffix="x"),
                 _num(p["forget_rouge_l"]), _num(p["forget_truth_ratio"]), p.get("eval_dtype") or "-"]
                for p in e["frontier"]
            ]  # fmt: skip
            parts.append(_table(["epoch", "FQ", "MU", "MU / target", "forget ROUGE-L", "forget TR", "evaluated in"], rows))
            if target_mu:
                best = {r: best_forget_quality(e["frontier"], target_mu, r) for r in (0.95, 0.9)}
                parts.append(
                    f"Best forget quality along it at MU >= 0.95x of the target: {_num(best[0.95], p_value=True)}; "
                    f"at >= 0.9x: {_num(best[0.9], p_value=True)}."
                )

    parts.append("## Per-split metrics")
    parts.append(
        "P: length-normalised probability of the answer (real authors / world facts: normalised over the four "
        "options). ROUGE-L: recall of the greedy generation against the answer. TR: truth ratio, on the forget "
        "set mean min(R, 1/R), elsewhere mean max(0, 1-R)."
    )
    rows = [
        [name, split, _num(s["probability"]), _num(s["rouge_l"]), _num(s["truth_ratio"]), str(s["n"])]
        for name, e in models.items()
        for split, s in e["splits"].items()
    ]
    parts.append(_table(["model", "split", "P", "ROUGE-L", "TR", "n"], rows))
    if "truth_ratio" in figures:
        parts.append("### Forget-set truth ratios")
        parts.append(f"![truth ratio histogram]({link(figures['truth_ratio'])})")

    if "memo" in figures:
        parts.append("## MEMO: original answers vs inverted facts")
        parts.append(
            "MEMO measures how much of an answer the model to unlearn reproduces from its prefixes. The inverted "
            "facts the model is fine-tuned on are the top-k candidates by MEMO."
        )
        if spec.memo.variant == "exact":
            variant = "exact (the reference definition: every window generates up to max_new_tokens)"
        else:
            variant = (
                f"**fast**, not the reference definition: each window generates at most "
                f"{spec.memo.fast_token_factor:g} x its target's tokens + {spec.memo.fast_token_margin}; "
                "its top-k agreement with exact mode is measured in docs/memo.md"
            )
        parts.append(f"MEMO variant: {variant}; mode {spec.memo.mode}, stride {spec.memo.stride}.")
        parts.append(f"![MEMO distributions]({link(figures['memo'])})")
        memo = memo_distributions(facts["memo"], facts["selected"])
        parts.append(
            _table(["answers", "n", "mean MEMO"], [[k, str(len(v)), _num(sum(v) / len(v))] for k, v in memo.items()])
        )
        rows = [r for r in facts["memo"] if r.candidate_memos]
        above = sum(r.original_memo > max(r.candidate_memos) for r in rows)
        parts.append(f"The original answer out-scores every inverted candidate on {above} of {len(rows)} facts.")

    if (section := inversion_section(facts)) is not None:
        parts.append(section)
    forget_records = {role: records.get("forget", []) for role, records in facts["per_example"].items()}
    if section := leakage_section(forget_records):
        parts.append(section)
    parts.append(examples_section(facts))
    parts.append(timings_section(facts))
    parts.append("## Seeds")
    parts.append(_table(["setting", "seed"], [[k, str(v)] for k, v in seeds(spec).items()]))
    parts.append("## Versions")
    parts.append(_table(["package", "version"], [[k, v] for k, v in versions().items()]))
    parts.append("## Machine")
    parts.append(
        "Where the report was written (on a local Ray, where every stage ran): timings and `auto` precision "
        "depend on it."
    )
    parts.append(_table(["property", "value"], [[k, str(v)] for k, v in hardware.describe().items()]))
    parts.append("## Resolved configuration")
    parts.append(f"```yaml\n{spec.to_yaml()}```")
    return "\n\n".join(parts) + "\n"


def inversion_section(facts: dict[str, Any]) -> str | None:
    """How good the inverted facts are, and every fact's candidates with MEMO, selection and failed checks."""
    quality = inversion_quality(facts)
    if quality is None:
        return None
    parts = [
        "## Inverted facts",
        f"Generator: **{quality['kind']}** inversion (`invert.kind`; docs/memo.md). A candidate is *coherent* when it "
        "keeps the subject, contains none of the answer's fact-bearing spans, is no restatement, refusal, list of "
        "unrelated names or off-topic text, and reads as a sentence (`meow/invert/quality.py`).",
    ]
    checks = [*CHECKS, "coherent"]
    rows = [
        [name, str(q["n"]), *(_num(q[c], digits=2) for c in checks)]
        for name, q in (("all candidates", quality["candidates"]), ("selected", quality["selected"]))
    ]
    parts.append(_table(["candidates", "n", *(c.replace("_", " ") for c in checks)], rows))
    if quality["facts_without_candidates"]:
        parts.append(
            f"{quality['facts_without_candidates']} of {quality['facts']} facts got no usable candidate and are not "
            "unlearned by MEOW (their spans had no alternative that passed the checks)."
        )
    memos = {r.index: r.candidate_memos for r in facts["memo"]}
    picked = {row.index: row.selected_candidates for row in facts["selected"]}
    parts.append("### Every fact")
    parts.append("Each forget fact's original answer, the spans that carry its fact, and its candidates with MEMO "
                 "on the model to unlearn; **selected** ones are what it is fine-tuned on.")
    for record in facts["candidates"]:
        index, memo, checks = record.index, memos.get(record.index, []), record.quality or []
        spans = ", ".join(f"`{s['text']}`" for s in record.spans or []) or "none found"
        lines = [f"**Q{index}:** {_escape(record.question)}", "", f"*answer*: {_escape(record.answer)}  ",
                 f"*fact-bearing spans*: {spans}", ""]  # fmt: skip
        for i, text in enumerate(record.candidates):
            score = f" (MEMO {memo[i]:.3f})" if i < len(memo) else ""
            mark = "**selected** " if i in picked.get(index, []) else ""
            failed = [c.replace("_", " ") for c in CHECKS if not checks[i][c]]
            flag = f"; fails: {', '.join(failed)}" if failed else ""
            lines.append(f"- {mark}{_escape(text)}{score}{flag}")
        if not record.candidates:
            lines.append("- (no candidate)")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def examples_section(facts: dict[str, Any]) -> str:
    """The first forget questions with each model's greedy answer (and what MEOW trained on)."""
    per_example = facts["per_example"]
    forget = {role: {r["index"]: r for r in records.get("forget", [])} for role, records in per_example.items()}
    first = next(iter(forget.values()), {})
    selected = {row.index: row.selected for row in facts["selected"]}
    parts = ["## Example generations (forget set)"]
    for index in list(first)[:EXAMPLES]:
        row = first[index]
        lines = [f"**Q{index}:** {_escape(row['question'])}", "", f"- *answer*: {_escape(row['answer'])}"]
        for role, records in forget.items():
            if index in records:
                lines.append(f"- *{_display(role, facts['spec'])}*: {_escape(records[index]['generation'])}")
        for answer in selected.get(index, []):
            lines.append(f"- *trained on (inverted)*: {_escape(answer)}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def timings_section(facts: dict[str, Any]) -> str:
    status = facts["run"].status().get("stages", {})
    rows = [
        [
            name,
            status.get(name, {}).get("state", "finished"),
            _num(m["seconds"], digits=1),
            time.strftime("%H:%M:%S", time.localtime(m["started"])),
        ]
        for name, m in facts["manifests"].items()
    ]
    total = sum(m["seconds"] for m in facts["manifests"].values())
    return (
        "## Timings\n\n"
        + _table(["stage", "this run", "seconds", "started"], rows)
        + f"\n\nTotal of the stages: {total:.1f} s."
    )


def seeds(spec: PipelineSpec) -> dict[str, int]:
    found = {"spec": spec.seed}
    for stage in spec.stages:
        config = getattr(spec, stage, None)
        if config is None:
            continue
        dumped = config.model_dump()
        for key, value in _walk(dumped, stage):
            if key.endswith("seed") and value is not None:
                found[key] = value
    return found


def _walk(value: Any, prefix: str):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{prefix}.{k}")
    else:
        yield prefix, value


def _num(value: float | None, digits: int = 3, p_value: bool = False, suffix: str = "") -> str:
    if value is None:
        return "–"
    if p_value and value < 10**-digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}{suffix}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _escape(text: str) -> str:
    """User text as literal inline markdown on one line: the characters that open inline constructs escaped."""
    text = " ".join(text.split())
    return "".join("\\" + c if c in "\\`*_[]<>&!|" else c for c in text) or "(empty)"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
pre {{ background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 0.85rem; }}
</style></head><body>
{body}
</body></html>
"""


def render_html(markdown_text: str, title: str) -> str:
    """One HTML file with everything inline; raw HTML in the markdown (generated text) is escaped."""
    from html import escape

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    return HTML.format(title=escape(title), body=body)
