"""MEMO throughput: the authors' serial loop vs the Ray Data vLLM-actor stage vs its `fast` variant.

The same inputs for all three: a fixed subset of TOFU forget01, each fact's original answer plus
its first 4 TOFU `perturbed_answer`s standing in for inverted candidates (fixed text, so the
benchmark does not depend on a generator). Scored on the same model (default: the embedded
SmolLM2, fp32):

  (a) reference loop: transformers `generate`, one window at a time, as the authors' memo.py;
  (b) the MEMO stage's job: every distinct window prompt of every answer through `actors` vLLM
      engine actors fed by Ray Data (engine start-up included in the time);
  (c) the same job with `variant: fast`.

Top-k agreement: the fraction of facts whose top-3-by-MEMO candidate set (the default selection)
is identical to the reference loop's. Exact mode must agree on every fact.

    .venv/bin/python benchmarks/memo_throughput.py            # ~15 min on 2 idle cores

The last line printed is one JSON object with `speedup`, `topk_agreement`, `fast_speedup` and
`fast_topk_agreement`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# One thread per engine actor; set before torch is imported anywhere in this process.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

# The two forget01 facts with the fewest windows (146 in all): the serial loop generates ~120 tokens
# per window one at a time, ~10-15 minutes for these on one idle core.
DEFAULT_FACTS = (1, 2)
CANDIDATES = 4
TOP_K = 3


def fixed_facts(indices) -> list[dict]:
    from meow.data import load_tofu

    records = load_tofu("forget01_perturbed")
    return [
        {
            "index": r.index,
            "question": r.question,
            "answer": r.answer,
            "candidates": list(r.extra["perturbed_answer"][:CANDIDATES]),
        }
        for r in (records[i] for i in indices)
    ]


def top_k(records: list[dict]) -> list[frozenset[int]]:
    from meow.select.rules import select

    return [frozenset(select("largest", r["candidate_memos"], TOP_K, seed=0, index=r["index"])) for r in records]


def agreement(a: list[dict], b: list[dict]) -> float:
    return sum(x == y for x, y in zip(top_k(a), top_k(b))) / len(a)


def max_difference(a: list[dict], b: list[dict]) -> float:
    return max(
        abs(x - y)
        for ra, rb in zip(a, b)
        for x, y in zip([ra["original_memo"], *ra["candidate_memos"]], [rb["original_memo"], *rb["candidate_memos"]])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--facts", default=",".join(map(str, DEFAULT_FACTS)), help="forget01 row indices")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    # One thread per process, the rule on this machine (2 threads on 2 shared cores thrash); the stage
    # runs `actors` one-thread engines, so its speedup includes using `actors` cores.
    parser.add_argument("--serial-threads", type=int, default=1, help="torch threads of the serial loop")
    # The same windows on all three sides; above the reference's 5 it makes a many-fact comparison
    # affordable on CPUs (fewer windows per answer, each as long a generation).
    parser.add_argument("--stride", type=int, default=5, help="window stride in characters")
    args = parser.parse_args()

    from meow.cluster import ray_session
    from meow.memo.config import MemoConfig
    from meow.memo.metric import windows
    from meow.memo.reference import ReferenceGenerator, reference_scores
    from meow.memo.stage import score_facts
    from meow.models import resolve_model
    from meow.pipeline.records import CandidateRecord

    facts = fixed_facts([int(i) for i in args.facts.split(",")])
    inverted = [CandidateRecord(**f, rejected={}, short=False, attempts=1, provenance={}) for f in facts]
    n_windows = sum(len(windows(f["question"], a, stride=args.stride)) for f in facts for a in [f["answer"], *f["candidates"]])
    print(f"{len(facts)} facts x {1 + CANDIDATES} answers = {n_windows} windows (stride {args.stride}), model {args.model}", flush=True)

    # The machine may be shared: the load average over each phase goes into the table.
    started, load = time.time(), os.getloadavg()[0]
    reference = ReferenceGenerator(resolve_model(args.model), threads=args.serial_threads)
    serial = reference_scores(facts, reference, stride=args.stride)
    serial_s, serial_load = time.time() - started, (load + os.getloadavg()[0]) / 2
    serial_tokens = reference.tokens
    del reference

    config = MemoConfig(actors=args.actors, batch_size=args.batch_size, stride=args.stride)
    with ray_session(num_cpus=args.actors):
        started, load = time.time(), os.getloadavg()[0]
        exact, exact_stats = score_facts(inverted, args.model, config)
        exact_s, exact_load = time.time() - started, (load + os.getloadavg()[0]) / 2
        started, load = time.time(), os.getloadavg()[0]
        fast, fast_stats = score_facts(inverted, args.model, config.model_copy(update={"variant": "fast"}))
        fast_s, fast_load = time.time() - started, (load + os.getloadavg()[0]) / 2
    # The reference loop's shape, to compare with it.
    exact, fast = [r.to_json() for r in exact], [r.to_json() for r in fast]

    rows = [
        ("(a) reference serial HF loop", serial_s, serial_tokens, n_windows, 1.0, 1.0, 0.0, serial_load),
        ("(b) Ray Data vLLM actors, exact", exact_s, exact_stats["tokens_generated"], exact_stats["distinct_prompts"],
         serial_s / exact_s, agreement(serial, exact), max_difference(serial, exact), exact_load),
        ("(c) Ray Data vLLM actors, fast", fast_s, fast_stats["tokens_generated"], fast_stats["distinct_prompts"],
         serial_s / fast_s, agreement(serial, fast), max_difference(serial, fast), fast_load),
    ]  # fmt: skip
    print(
        f"\n{'mode':34} {'seconds':>8} {'tokens':>8} {'tok/s':>7} {'prompts':>8} {'speedup':>8} "
        f"{'top-3 agree':>11} {'max |dMEMO|':>11} {'load avg':>8}"
    )
    for name, seconds, tokens, prompts, speedup, agree, diff, load in rows:
        print(
            f"{name:34} {seconds:8.1f} {tokens:8d} {tokens / seconds:7.1f} {prompts:8d} {speedup:7.1f}x "
            f"{agree:11.2f} {diff:11.4f} {load:8.1f}"
        )
    print(
        json.dumps(
            {
                "facts": len(facts),
                "windows": n_windows,
                "stride": args.stride,
                "model": args.model,
                "actors": args.actors,
                "serial_threads": args.serial_threads,
                "load_average": [round(serial_load, 1), round(exact_load, 1), round(fast_load, 1)],
                "serial_s": round(serial_s, 1),
                "stage_s": round(exact_s, 1),
                "fast_s": round(fast_s, 1),
                "speedup": round(serial_s / exact_s, 2),
                "topk_agreement": agreement(serial, exact),
                "max_abs_memo_difference": max_difference(serial, exact),
                "fast_speedup": round(serial_s / fast_s, 2),
                "fast_topk_agreement": agreement(serial, fast),
            }
        )
    )


if __name__ == "__main__":
    main()
