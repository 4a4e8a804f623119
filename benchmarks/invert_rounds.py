"""Inversion in one round against rounds of a few attempts: time, prompts generated, same candidates?

A local engine gets every attempt of every fact in one pool job by default (`invert.attempts_per_round`
empty): the engine actors start once, but facts that had their N candidates after attempt 1 or 2 are
still asked the rest. Rounds of `r` attempts ask only the facts still short, and start the actors
once per round. This script runs the spec's inversion on its forget set once per round size, one
after the other in one local Ray, and compares each with the first:

    .venv/bin/python benchmarks/invert_rounds.py [--spec pipelines/default.yaml] [--rounds all,2]

Columns: wall seconds, rounds, each round's seconds (engine start-up included), prompts generated,
speed-up against the first row, and how many facts got exactly the candidates of the first row (each
(fact, attempt) has its own seed, so the rule is the same; a difference can only come from the
engine's numerics under another batch composition).
Prints a table and, last, one JSON object keyed by round size.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# One thread per process on small CPU machines (machine notes); set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from meow.cluster import ray_session  # noqa: E402
from meow.invert import stage as invert_stage  # noqa: E402
from meow.pipeline.spec import load_spec_file  # noqa: E402


def run(records, config) -> dict:
    rounds: list[dict] = []
    started = time.perf_counter()
    out = invert_stage.invert(records, config, on_round=rounds.append)
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "rounds": len(rounds),
        "round_s": [r["seconds"] for r in rounds],
        "prompts": sum(r["prompts"] for r in rounds),
        "candidates": {r["index"]: r["candidates"] for r in out},
        "short": sum(r["short"] for r in out),
    }


def summarize(results: dict[str, dict]) -> dict[str, dict]:
    """Each round size's figures, its speed-up and candidate agreement against the first size run."""
    first = next(iter(results.values()))
    summary = {}
    for size, r in results.items():
        same = sum(r["candidates"].get(i) == c for i, c in first["candidates"].items())
        summary[size] = {k: r[k] for k in ("wall_s", "rounds", "round_s", "prompts", "short")} | {
            "speedup": round(first["wall_s"] / r["wall_s"], 3),
            "same_candidates_facts": same,
            "facts": len(first["candidates"]),
        }
    return summary


def table(summary: dict[str, dict]) -> str:
    header = ("attempts/round", "wall s", "rounds", "round s", "prompts", "speed-up", "same facts", "short")
    lines = [" ".join(f"{h:>10}" for h in header)]
    for size, s in summary.items():
        cells = (
            size, f"{s['wall_s']:.1f}", s["rounds"], "+".join(f"{t:.0f}" for t in s["round_s"]), s["prompts"],
            f"{s['speedup']:.2f}x", f"{s['same_candidates_facts']}/{s['facts']}", s["short"],
        )  # fmt: skip
        lines.append(" ".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="pipelines/default.yaml")
    parser.add_argument("--rounds", default="all,2", help="`all` (one round, the local default) or attempts per round")
    args = parser.parse_args(argv)
    spec = load_spec_file(args.spec)
    if spec.invert.endpoint is not None:
        parser.error("the spec inverts through an endpoint; this compares local engine rounds")
    records = spec.forget.records()

    results: dict[str, dict] = {}
    with ray_session(num_cpus=spec.ray.num_cpus, address=spec.ray.address):
        for size in (s.strip() for s in args.rounds.split(",") if s.strip()):
            per_round = None if size == "all" else int(size)
            # Rounds are a free-form generator's: a structured spec is compared with its few-shot prompt.
            config = spec.invert.model_copy(
                update={"attempts_per_round": per_round, "kind": "free-form", "max_attempts": spec.invert.max_attempts,
                        **({"prompt": "few-shot", "max_new_tokens": 256} if spec.invert.resolved_kind == "structured" else {})}
            )  # fmt: skip
            results[size] = run(records, config)

    summary = summarize(results)
    print(table(summary))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
