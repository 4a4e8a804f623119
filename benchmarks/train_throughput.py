"""Throughput of the unlearning step on SmolLM2: plain torch loop vs the Ray Train FSDP2 stage.

Same data and effective batch everywhere: MEOW's data on TOFU forget01 (40 facts, 32 per optimizer
step, micro-batches of 4 facts, [t1, t2, t3, t1] per fact with t1 computed once and weighted 2),
using TOFU's perturbed answers as stand-ins for inverted facts (they are wrong answers of the same
shape). Variants, one run each, one thread per process:

* naive:  single process, the HF forward with `labels` (logits over every position), fp32;
* plain:  single process, meow's step (logits on answer tokens only, bf16 autocast), no Ray, no FSDP;
* fsdp1:  the Ray Train stage (`meow.train.trainer.fit`), 1 worker, FSDP2;
* fsdp2:  the same with 2 workers (the default run's setting).

Tokens are real (non-padding) positions; TFLOP/s = 6 x parameters x tokens / seconds. The first
step of each variant is a warm-up and not timed. `fsdp_overhead` = what 2 workers would do with
perfect scaling of the plain loop (2 x its tokens/s) over what fsdp2 does; `fsdp1_overhead` = plain
over fsdp1 tokens/s. Both are also given on CPU time (per process), which is what counts when other
work shares the machine. Last line: one JSON object.

    .venv/bin/python benchmarks/train_throughput.py [--steps 3] [--skip-naive]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def forget_source(tokenizer, max_length: int):
    from meow.data import load_tofu
    from meow.train.data import fact_source

    records = load_tofu("forget01")
    perturbed = load_tofu("forget01_perturbed")
    inversions = {r.index: list(p.extra["perturbed_answer"][:3]) for r, p in zip(records, perturbed)}
    return fact_source(tokenizer, records, ["inverted"], max_length, 42, inversions=inversions, sequences_per_fact=4)


def single_process(model_dir: Path, plan, config, naive: bool) -> list[dict]:
    """One process, no Ray, no FSDP: the same optimizer step as the workers (or the naive HF forward)."""
    import torch
    from transformers import AutoModelForCausalLM

    from meow.train.losses import LOSSES, LossInputs
    from meow.train.methods import MeowArgs
    from meow.train.trainer import Scorer, TrainJob, collate, group_stats

    torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()
    model.config.use_cache = False
    scorer = Scorer(model)
    params = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    job = TrainJob(str(model_dir), "meow", MeowArgs(), config)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=not naive and config.precision == "bf16")
    history = []
    for step in plan.steps:
        wall, cpu = time.perf_counter(), time.process_time()
        total = 0.0
        for micro in step:
            if naive:
                # What a plain HF loop does: logits for every position, HF's token-mean loss per micro-batch.
                ids, mask, labels = collate([s for s in micro.groups["inverted"] for _ in range(s.weight)])
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss / len(step)
            else:
                stats = group_stats(scorer, None, micro, job, torch.device("cpu"), autocast)
                loss = LOSSES.get("meow")(LossInputs(stats, micro.scope), None)
            loss.backward()
            total += float(loss)
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = sum(m.tokens() for m in step)
        if naive:  # the duplicated t1 is computed twice
            tokens = sum(len(s.input_ids) * s.weight for m in step for s in m.groups["inverted"])
        history.append(
            {"loss": total, "tokens": tokens, "seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
        )
    return history


def rates(history: list[dict], parameters: int, processes: int = 1) -> dict:
    timed = history[1:] or history
    tokens = sum(h["tokens"] for h in timed)
    seconds = sum(h["seconds"] for h in timed)
    cpu = sum(h["cpu_seconds"] for h in timed) * processes  # a worker's CPU time x the workers
    return {
        "tokens_per_s": round(tokens / seconds, 1),
        "tflops": round(6 * parameters * tokens / seconds / 1e12, 4),
        "tokens_per_cpu_s": round(tokens / cpu, 1),
        "step_seconds": round(seconds / len(timed), 2),
        "losses": [round(h["loss"], 5) for h in history],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per variant (the first is not timed)")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from meow.cluster import ray_session
    from meow.models import pull_embedded
    from meow.train.config import TrainConfig
    from meow.train.data import plan_training
    from meow.train.methods import MeowArgs
    from meow.train.trainer import TrainJob, fit

    model_dir = pull_embedded("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    source = forget_source(tokenizer, 200)
    # Enough epochs for `steps` full steps of 32 facts.
    config = TrainConfig(epochs=args.steps * 32 / 40, checkpoint_every=0)
    parameters = _parameters(model_dir)
    results: dict[str, dict] = {}

    plan = plan_training(source, config, 1)
    if not args.skip_naive:
        results["naive"] = rates(single_process(model_dir, plan, config.model_copy(update={"precision": "fp32"}), True), parameters)
        print("naive", json.dumps(results["naive"]), flush=True)
    results["plain"] = rates(single_process(model_dir, plan, config, False), parameters)
    print("plain", json.dumps(results["plain"]), flush=True)

    with ray_session(num_cpus=2), tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            run_config = config.model_copy(update={"workers": workers})
            job = TrainJob(str(model_dir), "meow", MeowArgs(), run_config, label=f"bench-fsdp{workers}")
            started = time.perf_counter()
            result = fit(job, plan_training(source, run_config, workers), tmp, f"fsdp{workers}", Path(tmp) / f"out{workers}")
            results[f"fsdp{workers}"] = {
                **rates(result.history, parameters, workers),
                "fit_seconds": round(time.perf_counter() - started, 1),
            }
            print(f"fsdp{workers}", json.dumps(results[f"fsdp{workers}"]), flush=True)

    plain, one, two = results["plain"], results["fsdp1"], results["fsdp2"]
    summary = {
        "model": "smollm2",
        "parameters": parameters,
        "tokens_per_s": two["tokens_per_s"],
        "tflops": two["tflops"],
        "fsdp_overhead": round(2 * plain["tokens_per_s"] / two["tokens_per_s"], 3),
        "fsdp_overhead_cpu": round(plain["tokens_per_cpu_s"] / two["tokens_per_cpu_s"], 3),
        "fsdp1_overhead": round(plain["tokens_per_s"] / one["tokens_per_s"], 3),
        "fsdp1_overhead_cpu": round(plain["tokens_per_cpu_s"] / one["tokens_per_cpu_s"], 3),
        "bf16_vs_naive_speedup": round(plain["tokens_per_s"] / results["naive"]["tokens_per_s"], 2) if "naive" in results else None,
        "load_average": round(os.getloadavg()[0], 1),
        "variants": results,
    }
    print(json.dumps(summary))


def _parameters(model_dir: Path) -> int:
    """Parameters of the checkpoint (tied embeddings counted once: they are stored once)."""
    from math import prod

    from safetensors import safe_open

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(path, "pt") as f:
            total += sum(prod(f.get_slice(key).get_shape()) for key in f.keys())
    return total


if __name__ == "__main__":
    main()
