"""meow against the open-unlearning way, in one run: the unlearning step and one model's TOFU evaluation.

Same model, data and CPU cores (`--cores`) on both sides, each part timed side by side:

* train: MEOW's data on TOFU forget01 as `benchmarks/train_throughput.py` builds it (TOFU's perturbed
  answers standing in for inverted facts, [t1, t2, t3, t1] per fact), the `--spec`'s unlearning recipe
  (`unlearn.train`: facts per step, learning rate, weight decay, clipping, linear schedule with its
  warm-up, none in the default spec; precision `auto`: bf16 autocast where `meow.hardware` finds native
  bf16), `--steps` optimizer steps over the same facts in the same order.
  (a) peer: `transformers.Trainer` in this process, torch threads = the cores, plain next-token loss
      (HF `labels`, question tokens -100, logits at every position), one row per sequence (t1 twice),
      open-unlearning's TOFU per-device batch of 4 sequences with gradient accumulation up to the step,
      AdamW (`adamw_torch`);
  (b) meow: `meow.train.trainer.fit`, the Ray Train FSDP2 stage, one worker per core, the spec's FSDP
      settings (the default run keeps parameters gathered for the whole step), shared prompts packed
      into one row, logits on answer tokens only.
  Both losses are the token mean over the whole step (HF's `num_items_in_batch`), so the step losses
  agree up to bf16 rounding. Tokens as in train_throughput: the real positions of the unpacked
  sequences, t1 once, the same count on both sides; the first step is a warm-up and not timed.
* eval: the spec's four TOFU splits (`--max-rows` rows each), questions, paraphrased and perturbed
  answers encoded by meow's own loaders (`meow.evaluate.stage.eval_splits`, `tofu.scored_pair`), the
  engine dtype of `evaluate.engine`, `--max-new-tokens` greedy tokens (open-unlearning's 200) on both.
  (a) peer: transformers `generate`, greedy, left-padded batches of 32 questions in dataset order, and
      teacher forcing of answers, paraphrased and perturbed answers in right-padded batches of 32
      sequences, per split, as open-unlearning's TOFU evaluation batches them; model load included;
  (b) meow: `meow.evaluate.evaluator.evaluate_model` (vLLM engine actors, one per core, engine start
      included), uncached.
  Agreement: share of identical greedy generations, max |difference| of answer log-probs and truth
  ratios, model utility of both.

    .venv/bin/python benchmarks/peers.py [--model M] [--parts train,eval] [--steps 3] [--max-rows 5] [--cores 2]

Run it on an otherwise idle machine: the peers run `--cores` threads in one process, and an OpenMP
process whose cores are busy elsewhere slows down many times over (the load average is reported).
`--max-rows` defaults to the spec's (the whole evaluation: long on CPUs).
`--model` defaults to the spec's prepared TOFU target when the prepare cache holds it (what the
default run unlearns), else the spec's model. Prints a table; the LAST line is one JSON object
{"model", "cores", "machine", "load_average", "meow_vs_peer_train_speedup" (meow tokens/s over the
peer's), "meow_vs_peer_eval_speedup" (peer seconds over meow's), "train": {"peer": {...}, "meow": {...},
"max_abs_loss_diff"}, "eval": {"peer": {...}, "meow": {...}, "agreement": {...}}}; per-side train
entries as train_throughput's `rates` (tokens_per_s, tflops, tokens_per_cpu_s, step_seconds, losses).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# One thread per Ray worker / engine actor (set before torch is imported); the peers set their own.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

# This script's directory is on sys.path when it runs.
from tofu_methods import fmt  # noqa: E402
from train_throughput import forget_source, parameter_count, rates  # noqa: E402

PARTS = ("train", "eval")
# open-unlearning's TOFU settings: per-device train batch (sequences), evaluation batch for
# generation and for teacher forcing, new tokens per greedy generation.
PEER_TRAIN_BATCH = 4
PEER_EVAL_BATCH = 32
MAX_NEW_TOKENS = 200

Record = dict[str, Any]


# --- unlearning step ------------------------------------------------------------------------------


def step_rows(plan) -> list[list]:
    """Each optimizer step's sequences as the HF Trainer sees them: one row per copy (it has no weights)."""
    return [
        [s for micro in step for seqs in micro.groups.values() for s in seqs for _ in range(s.weight)]
        for step in plan.steps
    ]


def hf_batch(sequences: Sequence) -> dict:
    """HF's causal-LM inputs: right-padded ids, mask and `labels` with -100 on question and padding."""
    from meow.train.forward import collate

    ids, mask, labels = collate(list(sequences))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def peer_train(model_dir: Path, plan, config, threads: int, batch: int = PEER_TRAIN_BATCH) -> list[dict]:
    """The plan's steps through `transformers.Trainer`: per step, loss (token mean over the step),
    tokens (as meow counts them) and wall and CPU seconds."""
    import torch
    from transformers import AutoModelForCausalLM, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    from meow.train.worker import uses_bf16

    rows = step_rows(plan)
    sizes = {len(r) for r in rows}
    if len(sizes) != 1 or next(iter(sizes)) % batch:
        raise ValueError(f"steps of {sorted(sizes)} sequences do not split into batches of {batch}")
    torch.set_num_threads(threads)
    history: list[dict] = []

    class Clock(TrainerCallback):
        # From one optimizer step's end to the next: the step's data loading and collation included.
        def on_train_begin(self, args, state, control, **kwargs):
            self.last = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter(), time.process_time()
            step = plan.steps[len(history)]
            history.append(
                {
                    "tokens": sum(m.tokens() for m in step),
                    "seconds": now[0] - self.last[0],
                    "cpu_seconds": now[1] - self.last[1],
                }
            )
            self.last = now

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                history[-1]["loss"] = logs["loss"]

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=len(rows[0]) // batch,
            max_steps=len(rows),
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            max_grad_norm=config.max_grad_norm,
            lr_scheduler_type="linear",
            warmup_steps=plan.warmup_steps,
            optim="adamw_torch",
            bf16=uses_bf16(config.precision, torch.device("cpu")),
            use_cpu=True,
            seed=config.seed,
            # The plan's order: each optimizer step sees exactly the facts meow's step does.
            train_sampling_strategy="sequential",
            remove_unused_columns=False,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        dataset = [s for r in rows for s in r]
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=hf_batch, callbacks=[Clock()])
        # Its per-step log lines would bury the benchmark's own output; the losses are kept above.
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return history


def meow_train(model_dir: Path, plan, config) -> tuple[list[dict], float]:
    """meow's unlearning stage on the same plan (inside the current Ray session): its step history
    and the whole fit's seconds (workers' start, model load and export included)."""
    from meow.train.methods import MEOW, MeowArgs
    from meow.train.trainer import TrainJob, fit

    job = TrainJob(str(model_dir), MEOW, MeowArgs(), config, label="bench-peers")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = fit(job, plan, tmp, "peers", Path(tmp) / "model")
        return result.history, time.perf_counter() - started


def train_config(spec, steps: int, facts: int, cores: int):
    """The spec's unlearning recipe for `steps` full steps, one single-threaded worker per core."""
    train = spec.unlearn.train
    return train.model_copy(
        update={
            # `steps` x batch_size facts (+0.5: the plan takes int(epochs x facts) facts).
            "epochs": (steps * train.batch_size + 0.5) / facts,
            "workers": max(1, cores // max(1, int(train.cpus_per_worker))),
            "checkpoint_every": 0,
            "save_epochs": False,
        }
    )


# --- TOFU evaluation ------------------------------------------------------------------------------


def summed_logprobs(model, pairs: Sequence[tuple[list[int], list[int]]], batch: int, pad_id: int) -> list[float]:
    """Teacher forcing in the order given, `batch` (prompt, answer) sequences per forward pass,
    right-padded: each answer's summed token log-prob."""
    import torch

    sums = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        width = max(len(p) + len(a) for p, a in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (prompt, answer) in enumerate(chunk):
            ids[row, : len(prompt) + len(answer)] = torch.tensor(prompt + answer)
            mask[row, : len(prompt) + len(answer)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
            for row, (prompt, answer) in enumerate(chunk):
                # Logits at position t predict token t + 1; softmax over the answer positions only.
                scores = torch.log_softmax(logits[row, len(prompt) - 1 : len(prompt) + len(answer) - 1].float(), -1)
                sums.append(float(scores.gather(-1, torch.tensor(answer)[:, None]).sum()))
    return sums


def greedy_generations(engine, prompts: Sequence[list[int]], batch: int, max_new_tokens: int) -> list:
    """`generate`, greedy, `batch` prompts per call in the order given, left-padded; each completion
    cut at its first EOS and decoded as meow's engines do (`Engine._finish`)."""
    import torch

    from meow.engines import SamplingConfig

    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0)
    results = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), engine.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, prompt in enumerate(chunk):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        with torch.inference_mode():
            out = engine.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                top_p=None,
                top_k=None,
                eos_token_id=sorted(engine.stop_token_ids),
                pad_token_id=engine.pad_id,
            )
        results.extend(engine._finish(out[row, width:].tolist(), sampling) for row in range(len(chunk)))
    return results


def peer_split(engine, split, config, batch: int = PEER_EVAL_BATCH) -> list[Record]:
    """One split's per-example records, in the evaluator's format (`evaluate_model`)."""
    from meow.evaluate.evaluator import example_metrics
    from meow.evaluate.tofu import scored_pair

    def encoded(answers_of) -> list[tuple[list[int], list[int]]]:
        tokenizer, length = engine.tokenizer, config.max_length
        return [scored_pair(tokenizer, e.question, a, length) for e in split.examples for a in answers_of(e)]

    answers = encoded(lambda e: [e.answer])
    generations = greedy_generations(engine, [p for p, _ in answers], batch, config.max_new_tokens)
    answer_lp = summed_logprobs(engine.model, answers, batch, engine.pad_id)
    records = []
    if split.has_truth_ratio:
        # Real authors / world facts compare the answer itself with the wrong ones: its score is reused.
        bases = answers if split.probability_over_options else encoded(lambda e: [e.base])
        base_lp = answer_lp if bases is answers else summed_logprobs(engine.model, bases, batch, engine.pad_id)
        perturbed = encoded(lambda e: e.perturbed)
        perturbed_lp = summed_logprobs(engine.model, perturbed, batch, engine.pad_id)
    start = 0
    for k, example in enumerate(split.examples):
        record: Record = {
            "index": example.index,
            "question": example.question,
            "answer": example.answer,
            "generation": generations[k].text,
            "finish_reason": generations[k].finish_reason,
            "generated_tokens": len(generations[k].token_ids),
            "prompt_tokens": len(answers[k][0]),
            "answer_logprob": answer_lp[k],
            "answer_tokens": len(answers[k][1]),
        }
        if split.has_truth_ratio:
            n = len(example.perturbed)
            record.update(
                base_logprob=base_lp[k],
                base_tokens=len(bases[k][1]),
                perturbed_logprob=perturbed_lp[start : start + n],
                perturbed_tokens=[len(a) for _, a in perturbed[start : start + n]],
            )
            start += n
        records.append(example_metrics(record, split))
    return records


def peer_engine(model: str, dtype: str, threads: int):
    """The model through transformers on the CPU, in the evaluation's dtype, `threads` intra-op threads."""
    from meow.engines import EngineConfig
    from meow.engines.hf_engine import HFEngine
    from meow.models import resolve_model

    return HFEngine(resolve_model(model), EngineConfig(name="hf", dtype=dtype, device="cpu", threads=threads))


def peer_evaluate(model: str, splits, config, threads: int) -> dict[str, list[Record]]:
    engine = peer_engine(model, config.engine.dtype, threads)
    try:
        return {split.name: peer_split(engine, split, config) for split in splits}
    finally:
        engine.close()


def agreement(peer: dict[str, list[Record]], meow: dict[str, list[Record]]) -> dict[str, Any]:
    """How far the two evaluations of one model differ, example by example."""
    from meow.evaluate.evaluator import model_metrics

    pairs = [(a, b) for name in peer for a, b in zip(peer[name], meow[name], strict=True)]

    def largest(key: str) -> float | None:
        diffs = [abs(a[key] - b[key]) for a, b in pairs if key in a and key in b]
        return max(diffs, default=None)

    perturbed = [
        abs(x - y) for a, b in pairs for x, y in zip(a.get("perturbed_logprob", []), b.get("perturbed_logprob", []))
    ]
    utility = {"peer": model_metrics(peer, None)["model_utility"], "meow": model_metrics(meow, None)["model_utility"]}
    return {
        "examples": len(pairs),
        "identical_generations": sum(a["generation"] == b["generation"] for a, b in pairs) / len(pairs),
        "max_abs_answer_logprob_diff": largest("answer_logprob"),
        "max_abs_perturbed_logprob_diff": max(perturbed, default=None),
        "max_abs_truth_ratio_diff": largest("truth_ratio"),
        "max_abs_rouge_l_diff": largest("rouge_l_recall"),
        "model_utility": utility,
    }


# --- the run --------------------------------------------------------------------------------------


def prepared_target(spec) -> str | None:
    """The TOFU target the spec's `prepare` stage trains, when the prepare cache holds it."""
    from meow.data import tofu_mini
    from meow.models import resolve_model
    from meow.models.cache import meow_home, read_manifest
    from meow.train.finetune import prepared_key

    if "prepare" not in spec.stages:
        return None
    records = tofu_mini.training_sets(spec.prepare, spec.forget.records())["target"]
    directory = meow_home() / "prepared" / prepared_key(resolve_model(spec.model), records, spec.prepare.train)
    return str(directory) if read_manifest(directory) is not None else None


def table(result: dict[str, Any]) -> str:
    lines = [f"model {result['model']}, {result['cores']} cores"]
    if "train" in result:
        t = result["train"]
        lines.append(
            f"unlearning step: {t['steps']} steps of {t['facts_per_step']} facts ({t['rows_per_step']} sequences), "
            f"first untimed; {'bf16 autocast' if t['bf16'] else 'fp32'}"
        )
        lines.append(f"  {'':16} {'tokens/s':>9} {'step s':>7} {'tok/CPU-s':>9}  losses")
        labels = {
            "peer": f"HF Trainer {t['peer']['batch']}x{t['peer']['accumulation']}",
            "meow": f"fit, {t['meow']['workers']} workers",
        }
        for side, label in labels.items():
            r = t[side]
            losses = ", ".join(f"{x:.4f}" for x in r["losses"])
            speed = f"{r['tokens_per_s']:>9.1f} {r['step_seconds']:>7.2f} {r['tokens_per_cpu_s']:>9.1f}"
            lines.append(f"  {label:16} {speed}  {losses}")
        lines.append(
            f"  meow / peer tokens/s: {result['meow_vs_peer_train_speedup']}x; "
            f"max |step loss difference| {fmt(t['max_abs_loss_diff'])}"
        )
    if "eval" in result:
        e = result["eval"]
        a = e["agreement"]
        lines.append(f"TOFU evaluation: {a['examples']} examples ({e['rows_per_split']} rows per split), {e['dtype']}")
        lines.append(
            f"  peer (HF generate + teacher forcing, batches of {e['peer']['batch']}): {e['peer']['seconds']:.1f} s"
        )
        lines.append(f"  meow (evaluate_model, {e['meow']['actors']} vLLM actors): {e['meow']['seconds']:.1f} s")
        lines.append(f"  peer / meow seconds: {result['meow_vs_peer_eval_speedup']}x")
        mu = a["model_utility"]
        lines.append(
            f"  identical generations {a['identical_generations']:.3f}; max |diff| answer log-prob "
            f"{fmt(a['max_abs_answer_logprob_diff'])}, perturbed {fmt(a['max_abs_perturbed_logprob_diff'])}, "
            f"truth ratio {fmt(a['max_abs_truth_ratio_diff'])}, ROUGE-L {fmt(a['max_abs_rouge_l_diff'])}; "
            f"MU peer {fmt(mu['peer'], 4)} meow {fmt(mu['meow'], 4)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="pipelines/default.yaml", help="spec giving the recipe, splits and model")
    parser.add_argument(
        "--model", help="model spec (default: the spec's prepared TOFU target if cached, else its model)"
    )
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated, from: " + ", ".join(PARTS))
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per side (the first is not timed)")
    parser.add_argument("--max-rows", type=int, help="rows per TOFU split for the eval part (default: the spec's)")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="greedy tokens per generation")
    parser.add_argument(
        "--cores", type=int, default=2, help="CPU cores each side uses (peer threads, Ray workers / engine actors)"
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {sorted(unknown)}")
    if args.steps < 1 or args.cores < 1:
        parser.error("--steps and --cores must be at least 1")

    import torch
    from transformers import AutoTokenizer

    from meow import hardware
    from meow.cluster import ray_session
    from meow.evaluate.evaluator import evaluate_model
    from meow.evaluate.stage import eval_splits
    from meow.models import resolve_model
    from meow.pipeline.spec import load_spec_file
    from meow.train.data import plan_training
    from meow.train.worker import uses_bf16

    spec = load_spec_file(args.spec)
    model = args.model or prepared_target(spec) or spec.model
    model_dir = resolve_model(model)
    result: dict[str, Any] = {"model": model, "cores": args.cores, "machine": hardware.describe()}
    load = [os.getloadavg()[0]]

    if "train" in parts:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        source = forget_source(tokenizer, spec.unlearn.train.max_length)
        config = train_config(spec, args.steps, len(source.facts), args.cores)
        plan = plan_training(source, config, config.workers)
        rows = len(step_rows(plan)[0])
        peer_history = peer_train(model_dir, plan, config, args.cores)
        gc.collect()
        print(f"[peers] peer train: {sum(h['seconds'] for h in peer_history):.0f} s", file=sys.stderr, flush=True)
    if "eval" in parts:
        evaluate = spec.evaluate.model_copy(
            update={
                "max_rows": args.max_rows or spec.evaluate.max_rows,
                "max_new_tokens": args.max_new_tokens,
                "actors": max(1, args.cores // max(1, int(spec.evaluate.cpus_per_actor))),
                "cache": False,
            }
        )
        splits = eval_splits(spec.model_copy(update={"evaluate": evaluate}))
        started = time.perf_counter()
        peer_records = peer_evaluate(model, splits, evaluate, args.cores)
        peer_seconds = time.perf_counter() - started
        gc.collect()
        print(f"[peers] peer eval: {peer_seconds:.0f} s", file=sys.stderr, flush=True)

    with ray_session(num_cpus=args.cores):
        if "train" in parts:
            meow_history, fit_seconds = meow_train(model_dir, plan, config)
        if "eval" in parts:
            started = time.perf_counter()
            meow_records = evaluate_model(model, splits, evaluate, label="peers")
            meow_seconds = time.perf_counter() - started
    load.append(os.getloadavg()[0])

    if "train" in parts:
        parameters = parameter_count(model_dir)
        peer = rates(peer_history, parameters)
        ours = rates(meow_history, parameters, config.workers)
        result["meow_vs_peer_train_speedup"] = round(ours["tokens_per_s"] / peer["tokens_per_s"], 3)
        result["train"] = {
            "steps": plan.total_steps,
            "facts_per_step": config.batch_size,
            "rows_per_step": rows,
            "bf16": uses_bf16(config.precision, torch.device("cpu")),
            "peer": {**peer, "batch": PEER_TRAIN_BATCH, "accumulation": rows // PEER_TRAIN_BATCH},
            "meow": {**ours, "workers": config.workers, "fit_seconds": round(fit_seconds, 1)},
            "max_abs_loss_diff": max(abs(a["loss"] - b["loss"]) for a, b in zip(peer_history, meow_history)),
        }
    if "eval" in parts:
        result["meow_vs_peer_eval_speedup"] = round(peer_seconds / meow_seconds, 3)
        result["eval"] = {
            "rows_per_split": evaluate.max_rows,
            "dtype": hardware.engine_dtype(evaluate.engine.dtype, "cpu"),
            "max_new_tokens": evaluate.max_new_tokens,
            "peer": {"seconds": round(peer_seconds, 1), "batch": PEER_EVAL_BATCH},
            "meow": {"seconds": round(meow_seconds, 1), "actors": evaluate.actors},
            "agreement": agreement(peer_records, meow_records),
        }
    result["load_average"] = [round(x, 1) for x in load]
    print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
