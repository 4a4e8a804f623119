"""bf16 evaluation against fp32 on finished runs: how far each frontier point moves, and the speed.

    .venv/bin/python benchmarks/eval_precision.py RUN [RUN ...] [--roles unlearned-epoch-1,...] [--time target]

Each RUN is a finished run directory whose `evaluate` stage ran in fp32 (the default). Every model
that stage evaluated but the oracle (by default; `--roles` picks) is evaluated again with the engine
in `--dtype` (`auto`: bf16 where the hardware computes it natively), through the evaluation cache.
A bf16 point is scored the way the evaluate stage scores the frontier's intermediate points under
`evaluate.frontier_dtype`: its forget quality against the run's fp32 oracle, its model utility
divided by the run's fp32 target's. Per model the table gives FQ, MU / target, forget ROUGE-L and
secret leak in both precisions; which models' forget quality changed; per run, the best forget quality
along the frontier at MU >= 0.95x and >= 0.9x with fp32 points only and with the intermediate points
in bf16 (what the stage reports under `frontier_dtype`).

`--time ROLE` evaluates that role's model of the first run once in each precision, uncached, one
after the other in this process's Ray: the speed ratio, measured side by side.

Last line: one JSON object {"machine": ..., "runs": {run: {"models": {role: {...}}, "best": ...}},
"max_abs_mu_ratio_diff": ..., "fq_changed": [...], "timing": {...}}.
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

from meow import hardware  # noqa: E402
from meow.cluster import ray_session  # noqa: E402
from meow.evaluate.evaluator import evaluate_cached, evaluate_model, forget_ratios, model_metrics  # noqa: E402
from meow.evaluate.metrics import best_forget_quality  # noqa: E402
from meow.evaluate.stage import EPOCH_PREFIX, EvaluateStage, eval_splits  # noqa: E402
from meow.pipeline.rundir import RunDir  # noqa: E402
from meow.pipeline.spec import PipelineSpec, load_spec_file  # noqa: E402
from meow.pipeline.stage import StageContext  # noqa: E402
from tofu_methods import fmt  # noqa: E402  (this script's directory is on sys.path)

RATIOS = (0.95, 0.9)
SHOWN = ("forget_quality", "model_utility", "forget_rouge_l", "forget_truth_ratio", "forget_secret_leak")


def run_models(location: Path) -> tuple[RunDir, PipelineSpec, dict[str, str]]:
    """A finished run, its spec, and the models its evaluate stage evaluates, by role."""
    run = RunDir(location)
    spec = load_spec_file(run.path / "spec.yaml")
    ctx = StageContext(spec, run, run.path / "evaluate", logging.getLogger("eval_precision"), "")
    return run, spec, EvaluateStage(spec).models(ctx)


def compare_run(location: Path, roles: list[str] | None, dtype: str) -> dict[str, Any]:
    run, spec, models = run_models(location)
    fp32 = {role: run.examples(role) for role in models}
    missing = [role for role, examples in fp32.items() if examples is None]
    if missing:
        raise SystemExit(f"{location}: the evaluate stage has no records for {missing}")
    oracle_forget = forget_ratios(fp32["oracle"]) if "oracle" in fp32 else None
    # The run's own (fp32) metrics of every model, computed once.
    reference = {role: model_metrics(examples, oracle_forget) for role, examples in fp32.items()}
    target_mu = reference["target"]["model_utility"]
    splits = eval_splits(spec)
    config = spec.evaluate.with_dtype(dtype)
    chosen = roles or [role for role in models if role != "oracle"]
    out: dict[str, Any] = {}
    for role in chosen:
        started = time.time()
        low, cached = evaluate_cached(models[role], splits, config, label=f"{role} ({dtype})")
        other = model_metrics(low, oracle_forget)
        out[role] = {
            "fp32": {k: reference[role][k] for k in SHOWN},
            dtype: {k: other[k] for k in SHOWN},
            "mu_ratio_diff": (other["model_utility"] - reference[role]["model_utility"]) / target_mu,
            "eval_s": round(time.time() - started, 1),
            "cached": cached,
        }
    best = {}
    for name, points in (("fp32", {}), (dtype, {r: v[dtype] for r, v in out.items() if r.startswith(EPOCH_PREFIX)})):
        # The frontier as the stage reports it: target, each epoch's model, the final model.
        frontier = [points.get(role) or reference[role] for role in models if role != "oracle"]
        best[name] = {str(r): best_forget_quality(frontier, target_mu, r) for r in RATIOS}
    return {"models": out, "best": best, "target_mu": target_mu}


def time_both(location: Path, role: str, dtype: str) -> dict[str, Any]:
    """One model evaluated uncached in fp32, then in `dtype`: seconds and the ratio."""
    _, spec, models = run_models(location)
    model = models[role]
    splits = eval_splits(spec)
    seconds = {}
    for name in ("float32", dtype):
        started = time.time()
        evaluate_model(model, splits, spec.evaluate.with_dtype(name), label=f"{role} ({name}, timed)")
        seconds[name] = round(time.time() - started, 1)
    return {"role": role, "seconds": seconds, "speedup": round(seconds["float32"] / seconds[dtype], 2)}


def table(result: dict[str, Any], dtype: str) -> str:
    lines = []
    for location, entry in result["runs"].items():
        lines.append(f"{location} (target MU {entry['target_mu']:.4f})")
        lines.append(
            f"  {'model':<20} {'FQ fp32':>8} {'FQ ' + dtype[:4]:>8} {'MU/t fp32':>9} {'MU/t ' + dtype[:4]:>9}"
            f" {'ROUGE fp32':>10} {'ROUGE ' + dtype[:4]:>10} {'leak fp32':>9} {'leak ' + dtype[:4]:>9} {'eval s':>7}"
        )
        mu = entry["target_mu"]
        for role, m in entry["models"].items():
            a, b = m["fp32"], m[dtype]
            lines.append(
                f"  {role:<20} {fmt(a['forget_quality']):>8} {fmt(b['forget_quality']):>8}"
                f" {a['model_utility'] / mu:>8.3f}x {b['model_utility'] / mu:>8.3f}x"
                f" {fmt(a['forget_rouge_l'], 3):>10} {fmt(b['forget_rouge_l'], 3):>10}"
                f" {fmt(a['forget_secret_leak'], 3):>9} {fmt(b['forget_secret_leak'], 3):>9}"
                f" {m['eval_s']:>6.0f}{'c' if m['cached'] else ' '}"
            )
        for name, best in entry["best"].items():
            lines.append(f"  best FQ along the frontier ({name} intermediate points): " + ", ".join(f"{fmt(v)} at MU >= {r}x" for r, v in best.items()))
    lines.append(f"max |MU difference| / target MU: {result['max_abs_mu_ratio_diff']:.4f}; FQ changed on: {result['fq_changed'] or 'none'}")
    if result.get("timing"):
        t = result["timing"]
        lines.append(f"timing ({t['role']}, uncached): " + ", ".join(f"{k} {v:.0f} s" for k, v in t["seconds"].items()) + f": {t['speedup']}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories (fp32 evaluation)")
    parser.add_argument("--roles", help="comma-separated roles to re-evaluate (default: every model but the oracle)")
    parser.add_argument("--dtype", default="auto", help="engine dtype to compare with fp32 (auto: bf16 where native)")
    parser.add_argument("--time", metavar="ROLE", help="also time this role's model of the first run, uncached, in both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dtype = hardware.engine_dtype(args.dtype, "cpu")
    if dtype == "float32":
        parser.error("--dtype resolves to float32 on this machine: nothing to compare")
    roles = [r.strip() for r in args.roles.split(",")] if args.roles else None

    spec = load_spec_file(args.runs[0] / "spec.yaml")
    result: dict[str, Any] = {"machine": hardware.describe(), "dtype": dtype, "runs": {}}
    with ray_session(num_cpus=spec.ray.num_cpus, address=spec.ray.address):
        for location in args.runs:
            result["runs"][str(location)] = compare_run(location, roles, dtype)
        if args.time:
            result["timing"] = time_both(args.runs[0], args.time, dtype)
    models = [(run, role, m) for run, e in result["runs"].items() for role, m in e["models"].items()]
    result["max_abs_mu_ratio_diff"] = max((abs(m["mu_ratio_diff"]) for _, _, m in models), default=0.0)
    result["fq_changed"] = [
        f"{run}:{role}" for run, role, m in models if m["fp32"]["forget_quality"] != m[dtype]["forget_quality"]
    ]
    print(table(result, dtype))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
