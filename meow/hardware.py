"""Whether the hardware at hand computes bf16 natively: what an `auto` precision setting becomes.

bf16 is the reference's precision and, with bf16 matrix units, 1.5-3x faster than fp32 (CUDA GPUs
from Ampere on; x86 CPUs with AVX512-BF16 or AMX, docs/engines.md). Without them torch emulates it:
on an AVX2-only AMD EPYC one core ran SmolLM2's linear layers at 7-10 GFLOP/s in bf16 against 50-90
in fp32 (benchmarks/cpu_gemm.py), and a `prepare` training step took 144 s under bf16 autocast
against ~14 s in fp32 (docs/training.md).
A setting of `auto` resolves where the work runs (a Ray worker, an engine actor), not in the driver,
which may sit on other hardware.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# torch's own probes of the CPU's bf16 matrix instructions (private, so looked up by name).
_CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def native_bf16(device: str = "cpu") -> bool:
    """True where `device` ("cpu" or "cuda") multiplies bf16 matrices in hardware."""
    import torch

    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in _CPU_BF16_PROBES)


def engine_dtype(dtype: str, device: str) -> str:
    """An engine's dtype setting as the engine runs it: `auto` becomes bfloat16 or float32."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if native_bf16(device) else "float32"


def describe() -> dict[str, Any]:
    """The machine this process runs on, for logs and reports: timings and `auto` precision depend on it."""
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu": names[0] if names else platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_bf16": native_bf16("cpu"),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpus": gpus,
    }
