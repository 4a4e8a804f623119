"""How close a finished run came to this machine's floor: its own token counts at the cores' best rate.

The work of each stage, counted from the run's own records:
* prepare: the target's and the oracle's trained tokens (per step, `prepare/<role>/meow-manifest.json`);
* invert: counted as free;
* memo: the tokens it generated (`memo/manifest.json`); its window prompts counted as free;
* unlearn: the tokens it trained on (`unlearn/manifest.json`);
* evaluate, per model: each example's question prompt once (its scorings find it in the prefix
  cache), the answer tokens it scored, each distinct scored answer once as the evaluator asks for it,
  and the tokens it generated (`evaluate/<model>/per_example/*.jsonl`; records from before the
  evaluator kept `prompt_tokens` count the prompts as free).
A token's forward pass is 2 x (block + LM head parameters) FLOP, counted in the linear layers
(`cpu_gemm.linear_shapes`) of the run's model (`prepare/target`, else the spec's `model`); a trained
token costs 3 passes (forward, and a backward of twice the products). Attention's own products, norms
and a method's reference-model passes are left out: the floor counts only work that must be done.

Floor seconds = FLOP / (cores x the best per-core GFLOP/s of the stage's precision). The rule: a stage
is bf16 where the run's spec makes it bf16 on this machine, by the code's own rules: training where
`train.precision` is bf16, or auto on a CPU with native bf16 (`uses_bf16`); an engine where its dtype is
bfloat16, or auto likewise (`engine_dtype`; an evaluated model's engine as the evaluate stage sets it,
`frontier_dtype` for the per-epoch models); everything else fp32. The per-core rates are given
(`--gflops-fp32`, `--gflops-bf16`) or measured here with `cpu_gemm.measure` at the model's shapes: the
best of vLLM's kernel and torch's over the shapes at prefill-sized products (under a minute). Both the rule and
a measured rate are this machine's, so run it where the run ran (it names both machines if not).

Measured seconds are the stages' own (`<stage>/manifest.json`), per evaluated model those of
`log.jsonl`. Totals: the cold run (every stage) and a rerun with the prepared models and the target's
and oracle's evaluations cached (every stage but `prepare`, and those two evaluations).
Last line: one JSON object with the same numbers.

    .venv/bin/python benchmarks/run_floor.py --run runs/default [--gflops-fp32 150 --gflops-bf16 900] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
from cpu_gemm import linear_shapes, measure

from meow.evaluate.stage import EvaluateStage
from meow.hardware import describe, engine_dtype
from meow.models import resolve_model
from meow.models.cache import read_manifest
from meow.pipeline.rundir import LOG, RunDir
from meow.pipeline.spec import load_spec_file
from meow.train.worker import uses_bf16

# The peak comes at prefill-sized products (docs/results.md: from 64 tokens up); two sizes halve the
# measuring time of cpu_gemm's four.
PEAK_MS = [256, 2048]
# Evaluations a rerun reads from the evaluation cache: the prepared models' own (same bytes, same rows).
CACHED_EVALUATIONS = ("target", "oracle")
# A trained token: one forward pass and a backward pass of twice its products.
TRAINED_PASSES = 3


def row(
    stage: str, precision: str, tokens: dict[str, int], work: str, gflop: float, measured_s: float,
    cached: bool = False, in_rerun: bool = True,
) -> dict[str, Any]:
    """One line of the table. `precision`: fp32, bf16, or - without model work; `tokens`: the counts the
    FLOP come from; `work`: them as the table shows them; `cached`: the work came from a cache, so
    `measured_s` did not do it; `in_rerun`: a rerun with the prepared models and the target's and
    oracle's evaluations cached does it again."""
    return {
        "stage": stage, "precision": precision, "tokens": tokens, "work": work, "gflop": gflop,
        "measured_s": measured_s, "cached": cached, "in_rerun": in_rerun,
    }  # fmt: skip


def grouped(n: float) -> str:
    """Thousands apart by spaces, as docs/results.md writes them."""
    return f"{n:,.0f}".replace(",", " ")


def parameters(model_dir: str) -> dict[str, int]:
    """Parameters of the linear layers a token passes through: all blocks', and the LM head's."""
    from transformers import AutoConfig

    shapes = linear_shapes(model_dir)
    head = shapes.pop("lm_head")
    layers = AutoConfig.from_pretrained(resolve_model(model_dir)).num_hidden_layers
    return {"blocks": layers * sum(k * n for k, n in shapes.values()), "lm_head": head[0] * head[1]}


def peak_gflops(model_dir: str) -> dict[str, float]:
    """This machine's best one-core GFLOP/s by precision at the model's shapes (either kernel)."""
    best: dict[str, float] = {}
    for key, kernels in measure(linear_shapes(model_dir), PEAK_MS).items():
        dtype = {"float32": "fp32", "bfloat16": "bf16"}[key.split(":")[0]]
        best[dtype] = max(best.get(dtype, 0.0), *(v for v in kernels.values() if v is not None))
    return best


def train_precision(precision: str) -> str:
    # The floor is the CPU cores': training is judged as it runs on a CPU.
    return "bf16" if uses_bf16(precision, torch.device("cpu")) else "fp32"


def engine_precision(dtype: str) -> str:
    return "bf16" if engine_dtype(dtype, "cpu") == "bfloat16" else "fp32"


def scored_tokens(example: dict[str, Any]) -> int:
    """Answer tokens the evaluator scored for one example. It scores a (prompt, answer) pair once
    (`plan_requests`) and every field that names it holds that one result, so equal (log-prob, tokens)
    results are one scoring: real authors' and world facts' `base` is their `answer`."""
    results = {(example["answer_logprob"], example["answer_tokens"])}
    if "base_logprob" in example:
        results.add((example["base_logprob"], example["base_tokens"]))
    results.update(zip(example.get("perturbed_logprob", []), example.get("perturbed_tokens", [])))
    return sum(tokens for _, tokens in results)


def log_events(run: RunDir) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run.path / LOG).read_text().splitlines() if line.strip()]


def stage_rows(run: RunDir, spec, forward: float, notes: list[str]) -> list[dict[str, Any]]:
    """One row per finished stage, evaluate one per evaluated model; `forward`: GFLOP of a token's pass."""
    events = log_events(run)
    rows = []
    for stage in spec.stages:
        manifest = run.manifest(stage)
        if manifest is None:
            notes.append(f"{stage}: not finished in this run, left out")
            continue
        summary, seconds = manifest.get("summary") or {}, manifest["seconds"]
        if stage == "prepare":
            trained, cached = {}, False
            for role in ("target", "oracle"):
                history = (read_manifest(run.path / "prepare" / role) or {}).get("history")
                if history is None:
                    notes.append(f"prepare: the {role}'s trained tokens are not recorded (no history)")
                    continue
                trained[role] = sum(step["tokens"] for step in history)
                if summary.get(role, {}).get("cached"):
                    cached = True
                    notes.append(f"prepare: the {role} came from the cache; it trained in "
                                 f"{summary[role]['train_seconds']:.0f} s when it was built")  # fmt: skip
            total = sum(trained.values())
            parts = ", ".join(f"{role} {grouped(n)}" for role, n in trained.items())
            rows.append(row(
                stage, train_precision(spec.prepare.train.precision), {"trained": total},
                f"{grouped(total)} trained tokens ({parts})", TRAINED_PASSES * forward * total, seconds, cached,
                in_rerun=False,
            ))  # fmt: skip
        elif stage == "memo":
            generated = summary["tokens_generated"]
            if summary.get("resumed_prompts"):
                notes.append(f"memo: {summary['resumed_prompts']} prompts were generated by an earlier attempt, "
                             "their tokens are not in the count")  # fmt: skip
            rows.append(row(
                stage, engine_precision(spec.memo.engine.dtype), {"generated": generated},
                f"{grouped(generated)} generated tokens ({grouped(summary['distinct_prompts'])} prompts free)",
                forward * generated, seconds,
            ))  # fmt: skip
        elif stage == "unlearn":
            trained = summary["tokens"]
            rows.append(row(
                stage, train_precision(spec.unlearn.train.precision), {"trained": trained},
                f"{grouped(trained)} trained tokens", TRAINED_PASSES * forward * trained, seconds,
            ))  # fmt: skip
        elif stage == "evaluate":
            # The last record of each model: a resumed stage evaluated it again.
            models = {e["model"]: e for e in events if e["event"] == "evaluate_model"}
            evaluate = EvaluateStage(spec)
            for model, event in models.items():
                examples = [e for split in (run.examples(model) or {}).values() for e in split]
                scored = sum(scored_tokens(e) for e in examples)
                generated = sum(e["generated_tokens"] for e in examples)
                # Records written before the evaluator kept it count their prompts as free.
                prompts = sum(e.get("prompt_tokens", 0) for e in examples)
                rows.append(row(
                    f"evaluate {model}", engine_precision(evaluate.settings(model).engine.dtype),
                    {"scored": scored, "generated": generated, "prompt": prompts},
                    f"{grouped(prompts)} prompt + {grouped(scored)} scored + {grouped(generated)} generated tokens",
                    forward * (prompts + scored + generated), event["seconds"], event["cached"],
                    in_rerun=model not in CACHED_EVALUATIONS,
                ))  # fmt: skip
            rest = seconds - sum(e["seconds"] for e in models.values())
            rows.append(row("evaluate (rest)", "-", {}, "(no model work: splits, metrics)", 0.0, round(rest, 2)))
        else:
            work = "(counted as free)" if stage == "invert" else "(no model work)"
            rows.append(row(stage, "-", {}, work, 0.0, seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finished run directory")
    parser.add_argument("--gflops-fp32", type=float, help="one core's best fp32 GFLOP/s (else measured)")
    parser.add_argument("--gflops-bf16", type=float, help="one core's best bf16 GFLOP/s (else measured)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores the run had")
    args = parser.parse_args()
    if not (Path(args.run) / "spec.yaml").is_file():
        parser.error(f"{args.run} is not a run directory (no spec.yaml)")

    run = RunDir(Path(args.run))
    spec = load_spec_file(run.path / "spec.yaml")
    model = str(run.path / "prepare" / "target") if "prepare" in spec.stages else spec.model
    params = parameters(model)
    forward = 2 * (params["blocks"] + params["lm_head"]) / 1e9
    given = {"fp32": args.gflops_fp32, "bf16": args.gflops_bf16}
    measuring = None in given.values()
    rates = {**peak_gflops(model), **{k: v for k, v in given.items() if v}} if measuring else given

    notes = [
        "not recorded, counted as free: MEMO's prompt tokens (memo/generations.partial.jsonl keeps the "
        "prompt texts only), inversion's tokens, and the evaluation's question prompts where its "
        "records lack `prompt_tokens`",
    ]
    rows = stage_rows(run, spec, forward, notes)
    for r in rows:
        r["floor_s"] = r["gflop"] / (args.cores * rates[r["precision"]]) if r["gflop"] else 0.0
    from_cache = [r["stage"] for r in rows if r["cached"]]
    if from_cache:
        notes.append(f"read from a cache in this run, measured seconds not the work's: {', '.join(from_cache)}")

    def total(selected: list[dict[str, Any]]) -> dict[str, float]:
        return {key: sum(r[key] for r in selected) for key in ("gflop", "floor_s", "measured_s")}

    machine = describe()
    # The last start: a resumed run may have moved.
    recorded = ([e["hardware"] for e in log_events(run) if e["event"] == "run_started"] or [None])[-1]

    def named(hw: dict[str, Any]) -> str:
        return f"{hw['cpu']}, {hw['cpus']} cores, bf16 {'native' if hw['cpu_bf16'] else 'emulated'}"

    print(f"machine: {named(machine)}; the floor at {args.cores} cores x {rates['fp32']:g} GFLOP/s fp32, "
          f"{rates['bf16']:g} bf16 ({'measured' if measuring else 'given'})")  # fmt: skip
    if recorded and named(recorded) != named(machine):
        print(f"the run ran on another machine: {named(recorded)}")
    print(f"model: {params['blocks'] / 1e6:.1f} M parameters in its blocks, {params['lm_head'] / 1e6:.1f} M in "
          f"the LM head: {forward:.3f} GFLOP a token's forward pass, {TRAINED_PASSES * forward:.3f} a trained "
          "token\n")  # fmt: skip
    print("| stage | precision | work | TFLOP | floor s | measured s | measured/floor |")
    print("|---|---|---|---:|---:|---:|---:|")

    def ratio(floor: float, measured: float, cached: bool) -> str:
        return f"{measured / floor:.2f}" if floor and not cached else "-"

    for r in rows:
        seconds = f"{r['measured_s']:.1f}" + (" (cached)" if r["cached"] else "")
        print(f"| {r['stage']} | {r['precision']} | {r['work']} | {r['gflop'] / 1e3:.1f} | {r['floor_s']:.0f} "
              f"| {seconds} | {ratio(r['floor_s'], r['measured_s'], r['cached'])} |")  # fmt: skip
    rerun = [r for r in rows if r["in_rerun"]]
    totals = {"cold": total(rows), "cached_rerun": total(rerun)}
    labels = {"cold": "cold", "cached_rerun": "cached rerun (no prepare, no target/oracle evaluation)"}
    for key, t in totals.items():
        cached = any(r["cached"] for r in (rows if key == "cold" else rerun))
        print(f"| **{labels[key]}** | | | {t['gflop'] / 1e3:.1f} | **{t['floor_s']:.0f}** | {t['measured_s']:.0f} "
              f"| {ratio(t['floor_s'], t['measured_s'], cached)} |")  # fmt: skip
    print()
    for note in notes:
        print(f"* {note}")
    print(json.dumps({
        "run": str(run.path), "machine": machine, "run_machine": recorded, "cores": args.cores,
        "gflops_per_core": rates, "parameters": params, "gflop_per_token": forward,
        "stages": rows, **totals, "notes": notes,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
