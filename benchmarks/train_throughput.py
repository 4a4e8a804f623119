"""Throughput of the unlearning step on SmolLM2: plain torch loop vs the Ray Train FSDP2 stage.

Same data and effective batch everywhere: MEOW's data on TOFU forget01 (40 facts, 32 per optimizer
step, micro-batches of 4 facts, [t1, t2, t3, t1] per fact with t1 computed once and weighted 2),
using TOFU's perturbed answers as stand-ins for inverted facts (they are wrong answers of the same
shape). Variants, one run each, one thread per process:

* naive:  single process, the HF forward with `labels` (logits over every position), fp32;
* plain:  single process, meow's step (logits on answer tokens only; precision `auto`: bf16 autocast
  where the CPU has bf16 instructions, fp32 elsewhere), no Ray, no FSDP;
* fsdp1:  the Ray Train stage (`meow.train.trainer.fit`), 1 worker, FSDP2;
* fsdp2:  the same with 2 workers (the default run's setting);
* fsdp2-keep: fsdp2 with `reshard_after_forward: false` (parameters gathered once per step
  instead of twice per micro-batch; same losses);
* fsdp1-keep-2threads: fsdp1 with `reshard_after_forward: false` and 2 CPUs (2 intra-op threads)
  for its one worker: the machine's two cores spent on one process's matrix products instead of
  on two processes that exchange parameters and gradients;
* fsdp2-keep-mb8: fsdp2-keep with micro-batches of 8 facts instead of 4 (half as many forward
  passes, twice as large; the step loss is the same sum, so losses agree to rounding);
* fsdp2-keep-padded: fsdp2-keep with `share_prompts: false`: each of a fact's answers in its own
  padded row with its own copy of the prompt, instead of one row holding the prompt once and every
  answer (same losses to rounding);
* fsdp2-lora: fsdp2 training LoRA adapters (rank 16 on every linear layer of the blocks) instead
  of every weight: a different update, so its losses differ.

Tokens are the real (non-padding) positions of the unpacked sequences for every variant (a packed
row computes fewer, so tokens/s is training data per second); TFLOP/s = 6 x parameters x tokens / seconds. The first
step of each variant is a warm-up and not timed. `fsdp_overhead` = what 2 workers would do with
perfect scaling of the plain loop (2 x its tokens/s) over what fsdp2 does; `fsdp1_overhead` = plain
over fsdp1 tokens/s; `two_workers_vs_one_speedup` = fsdp2-keep over fsdp1 tokens/s (one worker has
no other rank to gather from, so resharding costs it nothing). Both are also given on CPU time (per process), which is what counts when other
work shares the machine. Last line: one JSON object.

    .venv/bin/python benchmarks/train_throughput.py [--steps 3] [--variants plain,fsdp2,fsdp2-keep]
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


VARIANTS = (
    "naive",
    "plain",
    "fsdp1",
    "fsdp2",
    "fsdp2-keep",
    "fsdp1-keep-2threads",
    "fsdp2-keep-mb8",
    "fsdp2-keep-padded",
    "fsdp2-lora",
)


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

    from meow.train.forward import Scorer, collate, group_stats
    from meow.train.losses import LossInputs
    from meow.train.methods import MEOW, MeowArgs
    from meow.train.trainer import TrainJob
    from meow.train.worker import uses_bf16

    torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()
    model.config.use_cache = False
    scorer = Scorer(model)
    params = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    job = TrainJob(str(model_dir), MEOW, MeowArgs(), config)
    bf16 = not naive and uses_bf16(config.precision, torch.device("cpu"))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
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
                loss = MEOW.loss(LossInputs(stats, micro.scope), None)
            loss.backward()
            total += float(loss)
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = sum(m.tokens() for m in step)
        if naive:  # the duplicated t1 is computed twice
            tokens = sum(len(s.input_ids) * s.weight for m in step for s in m.groups["inverted"])
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        history.append({"loss": total, "tokens": tokens, "seconds": seconds, "cpu_seconds": cpu_seconds})
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
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    args = parser.parse_args()
    wanted = args.variants.split(",")
    if unknown := set(wanted) - set(VARIANTS):
        parser.error(f"unknown variants: {sorted(unknown)}")

    from transformers import AutoTokenizer

    from meow.cluster import ray_session
    from meow.models import pull_embedded
    from meow.train.config import LoraConfig, TrainConfig
    from meow.train.data import plan_training
    from meow.train.methods import MEOW, MeowArgs
    from meow.train.trainer import TrainJob, fit

    model_dir = pull_embedded("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    source = forget_source(tokenizer, 200)
    # Enough epochs for `steps` full steps of 32 facts.
    config = TrainConfig(epochs=args.steps * 32 / 40, checkpoint_every=0)
    parameters = parameter_count(model_dir)
    results: dict[str, dict] = {}

    plan = plan_training(source, config, 1)
    if "naive" in wanted:
        fp32 = config.model_copy(update={"precision": "fp32"})
        results["naive"] = rates(single_process(model_dir, plan, fp32, True), parameters)
        print("naive", json.dumps(results["naive"]), flush=True)
    if "plain" in wanted:
        results["plain"] = rates(single_process(model_dir, plan, config, False), parameters)
        print("plain", json.dumps(results["plain"]), flush=True)

    ray_variants = {
        "fsdp1": {"workers": 1},
        "fsdp2": {"workers": 2},
        "fsdp2-keep": {"workers": 2, "reshard_after_forward": False},
        "fsdp1-keep-2threads": {"workers": 1, "cpus_per_worker": 2, "reshard_after_forward": False},
        "fsdp2-keep-mb8": {"workers": 2, "reshard_after_forward": False, "micro_batch_size": 8},
        "fsdp2-keep-padded": {"workers": 2, "reshard_after_forward": False, "share_prompts": False},
        "fsdp2-lora": {"workers": 2, "lora": LoraConfig()},
    }
    with ray_session(num_cpus=2), tempfile.TemporaryDirectory() as tmp:
        for name in (v for v in ray_variants if v in wanted):
            run_config = config.model_copy(update=ray_variants[name])
            workers = run_config.workers
            job = TrainJob(str(model_dir), MEOW, MeowArgs(), run_config, label=f"bench-{name}")
            started = time.perf_counter()
            result = fit(job, plan_training(source, run_config, workers), tmp, name, Path(tmp) / name)
            fit_seconds = round(time.perf_counter() - started, 1)
            results[name] = {**rates(result.history, parameters, workers), "fit_seconds": fit_seconds}
            print(name, json.dumps(results[name]), flush=True)

    def ratio(numerator: str, denominator: str, key: str = "tokens_per_s", scale: float = 1.0) -> float | None:
        if numerator in results and denominator in results:
            return round(scale * results[numerator][key] / results[denominator][key], 3)
        return None

    summary = {
        "model": "smollm2",
        "parameters": parameters,
        "tokens_per_s": results.get("fsdp2", {}).get("tokens_per_s"),
        "tflops": results.get("fsdp2", {}).get("tflops"),
        "fsdp_overhead": ratio("plain", "fsdp2", scale=2.0),
        "fsdp_overhead_cpu": ratio("plain", "fsdp2", "tokens_per_cpu_s"),
        "fsdp1_overhead": ratio("plain", "fsdp1"),
        "fsdp1_overhead_cpu": ratio("plain", "fsdp1", "tokens_per_cpu_s"),
        # Scaling: two one-thread workers against one, both gathering parameters once per step.
        "two_workers_vs_one_speedup": ratio("fsdp2-keep", "fsdp1"),
        "keep_vs_reshard_speedup": ratio("fsdp2-keep", "fsdp2"),
        "two_threads_vs_two_workers_speedup": ratio("fsdp1-keep-2threads", "fsdp2-keep"),
        "mb8_vs_mb4_speedup": ratio("fsdp2-keep-mb8", "fsdp2-keep"),
        "shared_vs_padded_speedup": ratio("fsdp2-keep", "fsdp2-keep-padded"),
        "lora_vs_full_speedup": ratio("fsdp2-lora", "fsdp2"),
        "bf16_vs_naive_speedup": ratio("plain", "naive"),
        "load_average": round(os.getloadavg()[0], 1),
        "variants": results,
    }
    print(json.dumps(summary))


def parameter_count(model_dir: Path) -> int:
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
