"""MEOW against the baselines on one TOFU split, one prepared target/oracle pair, one evaluation.

    .venv/bin/python benchmarks/tofu_methods.py [--spec pipelines/default.yaml] [--methods meow,grad_ascent,...]

Every method runs as its own pipeline (`<runs>/<method>/`) from the same spec, differing only in
`unlearn.method`: `prepare` -> (`invert` -> `memo` -> `select` for methods trained on inverted facts)
-> `unlearn` -> `evaluate` -> `report`, all inside one local Ray. The prepared target and oracle come
from the prepare cache after the first run, and their evaluations from the evaluation cache, so each
further method costs its own unlearning and one evaluation. A rerun resumes finished runs.

Prints a table (forget quality, model utility, forget ROUGE-L, wall time, and the best forget quality
along each method's frontier at MU >= 0.95x and >= 0.9x of the target's, with the curves when the spec
saves each epoch's model, `unlearn.train.save_epochs`); the LAST line is one JSON
object `{"target": {...}, "oracle": {...}, "methods": {"meow": {...}, "grad_ascent": {...}, ...}}`,
entries as in each run's `report/metrics.json`. `wall_s` of a method is the time of the stages that
produced its unlearned model (for MEOW: invert + MEMO + select + unlearn).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

# One thread per process on small CPU machines (machine notes); set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from meow.cluster import ray_session  # noqa: E402
from meow.evaluate.metrics import best_forget_quality  # noqa: E402
from meow.pipeline.driver import run_pipeline  # noqa: E402
from meow.pipeline.spec import PipelineSpec, load_spec_file  # noqa: E402
from meow.train.methods import METHODS  # noqa: E402

BASELINES = ("grad_ascent", "grad_diff", "kl", "idk_po", "idk_dpo", "npo", "simnpo")
# Stages that build MEOW's training data; methods trained on other answers skip them.
INVERSION_STAGES = ("invert", "memo", "select")


def method_spec(base: PipelineSpec, method: str) -> PipelineSpec:
    """`base` unlearning with `method` (its default arguments unless `base` already runs it)."""
    uses_inversions = "inverted" in METHODS.get(method).groups
    stages = tuple(s for s in base.stages if uses_inversions or s not in INVERSION_STAGES)
    for needed in ("unlearn", "evaluate", "report"):
        if needed not in stages:
            raise SystemExit(f"the spec must run the `{needed}` stage to benchmark methods")
    data = base.model_dump(mode="json")
    data["name"] = f"{base.name}-{method}".replace("_", "-")[:63]
    data["stages"] = list(stages)
    data["unlearn"]["method"] = method
    if method != base.unlearn.method:
        data["unlearn"]["method_args"] = {}
    # Validated as a spec file would be (method arguments included).
    return PipelineSpec.model_validate(data)


def run_method(spec: PipelineSpec, location: Path, force: bool) -> dict[str, Any]:
    started = time.time()
    run = run_pipeline(spec, str(location), force=force)
    metrics = json.loads((run.path / "report" / "metrics.json").read_text())
    metrics["run_s"] = round(time.time() - started, 1)
    return metrics


def table(result: dict[str, Any]) -> str:
    rows = [("target", result.get("target")), ("oracle", result.get("oracle"))] + list(result["methods"].items())
    lines = [
        f"{'model':<14} {'FQ':>10} {'MU':>7} {'MU/target':>9} {'forget ROUGE-L':>14} {'wall s':>8}"
        f" {'best FQ@0.95x':>13} {'best FQ@0.9x':>12}"
    ]
    target_mu = (result.get("target") or {}).get("model_utility")
    for name, entry in rows:
        if entry is None:
            continue
        fq, mu = entry.get("forget_quality"), entry.get("model_utility")
        relative = f"{mu / target_mu:.2f}x" if mu is not None and target_mu else "-"
        wall = f"{entry['wall_s']:.0f}" if entry.get("wall_s") is not None else "-"
        best = entry.get("best_forget_quality") or {}
        lines.append(
            f"{name:<14} {fmt(fq):>10} {fmt(mu, 3):>7} {relative:>9} {fmt(entry.get('forget_rouge_l'), 3):>14} {wall:>8}"
            f" {fmt(best.get('0.95')):>13} {fmt(best.get('0.9')):>12}"
        )
    for name, entry in result["methods"].items():
        if len(entry.get("frontier") or []) > 2:
            curve = ", ".join(f"{p['epoch']:g}: {fmt(p['forget_quality'])} / {fmt(p['model_utility'], 3)}" for p in entry["frontier"])
            lines.append(f"{name} frontier (epoch: FQ / MU): {curve}")
    return "\n".join(lines)


def fmt(value: float | None, digits: int | None = None) -> str:
    """A number for a table: `digits` decimals, else 3 significant digits; "-" for none."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits is not None else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="pipelines/default.yaml", help="base pipeline spec (the default run)")
    parser.add_argument("--methods", default=",".join(("meow", "meow_secret") + BASELINES), help="comma-separated method names")
    parser.add_argument("--runs", default="runs/tofu-methods", help="directory of the per-method runs")
    parser.add_argument("--forget", help="forget set (TOFU split or file), overriding the spec")
    parser.add_argument("--force", action="store_true", help="recompute finished stages")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    base = load_spec_file(args.spec)
    if args.forget:
        base = base.model_copy(update={"forget": base.forget.model_copy(update={"source": args.forget})})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; registered: {METHODS.names()}")

    result: dict[str, Any] = {"methods": {}}
    with ray_session(num_cpus=base.ray.num_cpus, address=base.ray.address):
        for method in methods:
            metrics = run_method(method_spec(base, method), Path(args.runs) / method, args.force)
            for role in ("target", "oracle"):
                result.setdefault(role, metrics.get(role))
            result["methods"][method] = metrics["methods"][method]
            print(f"[{method}] run finished in {metrics['run_s']:.0f} s", file=sys.stderr, flush=True)
    target_mu = (result.get("target") or {}).get("model_utility")
    summary = {
        "target": _entry(result.get("target")),
        "oracle": _entry(result.get("oracle")),
        "methods": {m: _entry(e, target_mu) for m, e in result["methods"].items()},
    }
    print(table(summary))
    print(json.dumps(summary))
    return 0


def _entry(entry: dict[str, Any] | None, target_mu: float | None = None) -> dict[str, Any] | None:
    """The headline numbers of one entry (the per-split metrics stay in each run's report); for a
    method also its frontier and the best forget quality along it at MU >= 0.95x and >= 0.9x of the target."""
    if entry is None:
        return None
    keys = ("forget_quality", "model_utility", "forget_rouge_l", "forget_truth_ratio", "forget_probability", "wall_s")
    out = {k: entry.get(k) for k in keys} | {"splits": entry.get("splits")}
    if target_mu:
        frontier = entry.get("frontier") or [{"forget_quality": entry.get("forget_quality"), "model_utility": entry.get("model_utility")}]
        out["frontier"] = entry.get("frontier") or []
        out["best_forget_quality"] = {str(r): best_forget_quality(frontier, target_mu, r) for r in (0.95, 0.9)}
    return out


if __name__ == "__main__":
    sys.exit(main())
