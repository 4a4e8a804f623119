"""What a coarser MEMO stride costs: selections re-derived from a finished run's own window scores.

A MEMO run with `save_windows: true` keeps every window's ROUGE-1 precision. Windows start at
characters 1, 1+s, 1+2s, ...; those of stride m*s are every m-th of them, with the same prompt, the
same greedy generation and the same score. So a stride m*s run is exactly the sub-sampled windows,
and this script measures it without generating anything:

* windows: how many the coarser stride generates (the stage's cost is about proportional);
* top-k: the fraction of facts whose selected set (`select.rule`, `select.k` of the run) is unchanged;
* r: Pearson correlation of every answer's MEMO with the run's own;
* regret: the run's MEMO lost per selected candidate by selecting with the coarser stride,
  next to the mean best-to-worst candidate spread it is a fraction of.

    .venv/bin/python benchmarks/memo_stride.py --run runs/<default run>          # seconds, no model

Prints a table and, last, one JSON object keyed by stride.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import fmean

import numpy as np

from meow.memo.metric import mean
from meow.select.rules import select


def load(run: Path) -> tuple[list[dict], dict]:
    spec = json.loads((run / "memo" / "manifest.json").read_text())["config"]
    rows = [json.loads(line) for line in (run / "memo" / "scores.jsonl").read_text().splitlines() if line]
    if not rows or "candidate_windows" not in rows[0]:
        raise SystemExit(f"{run}/memo/scores.jsonl has no window scores: run MEMO with save_windows: true")
    return rows, spec


def measure(rows: list[dict], every: int, rule: str, k: int, seed: int) -> dict[str, float]:
    same, regret, spread, ours, theirs, windows = 0, [], [], [], [], 0
    for row in rows:
        full = row["candidate_memos"]
        coarse = [mean(w[::every]) for w in row["candidate_windows"]]
        chosen_full = select(rule, full, k, seed, row["index"])
        chosen_coarse = select(rule, coarse, k, seed, row["index"])
        same += set(chosen_full) == set(chosen_coarse)
        regret.append((sum(full[i] for i in chosen_full) - sum(full[i] for i in chosen_coarse)) / len(chosen_full))
        spread.append(max(full) - min(full))
        ours += full + [row["original_memo"]]
        theirs += coarse + [mean(row["original_windows"][::every])]
        windows += sum(len(w[::every]) for w in row["candidate_windows"] + [row["original_windows"]])
    return {
        "windows": windows,
        "topk_agreement": same / len(rows),
        "r": float(np.corrcoef(ours, theirs)[0, 1]),
        "regret": fmean(regret),
        "spread": fmean(spread),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a run directory whose memo stage saved windows")
    parser.add_argument("--multiples", default="1,2,3,4", help="strides to measure, as multiples of the run's")
    parser.add_argument("--rule", default=None, help="selection rule (default: the run's)")
    parser.add_argument("--k", type=int, default=None, help="selected per fact (default: the run's)")
    args = parser.parse_args()

    rows, memo = load(args.run)
    chosen = json.loads((args.run / "select" / "manifest.json").read_text())["config"]["select"]
    rule, k, seed = args.rule or chosen["rule"], args.k or chosen["k"], chosen["seed"]
    stride = memo["memo"]["stride"]

    results = {}
    print(f"{len(rows)} facts of {args.run}, MEMO {memo['memo']['variant']} stride {stride}, rule {rule} k={k}")
    print(f"{'stride':>7} {'windows':>8} {'fewer':>6} {'top-k':>6} {'r':>6} {'regret':>7} {'spread':>7}")
    base = None
    for every in (int(m) for m in args.multiples.split(",")):
        m = measure(rows, every, rule, k, seed)
        base = base or m["windows"]
        results[stride * every] = m
        print(
            f"{stride * every:>7} {m['windows']:>8} {base / m['windows']:>5.2f}x {m['topk_agreement']:>6.3f} "
            f"{m['r']:>6.3f} {m['regret']:>7.4f} {m['spread']:>7.3f}"
        )
    print(json.dumps({str(s): {k2: round(v, 4) for k2, v in m.items()} for s, m in results.items()}))


if __name__ == "__main__":
    main()
