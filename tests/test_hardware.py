"""`auto` precision: bf16 exactly where the CPU has bf16 matrix instructions, read independently from
the kernel's CPU flags (torch's probes are private and could be renamed under us)."""

from pathlib import Path

import pytest
import torch

from meow.engines import EngineConfig, create_engine
from meow.hardware import engine_dtype, native_bf16

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags() -> set[str]:
    return {flag for line in CPUINFO.read_text().splitlines() if line.startswith("flags") for flag in line.split()[2:]}


@pytest.mark.skipif(not CPUINFO.exists(), reason="needs Linux's /proc/cpuinfo")
def test_native_bf16_matches_the_cpu_flags():
    assert native_bf16("cpu") == bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def test_cuda_without_a_gpu_is_not_bf16():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: covered by torch.cuda.is_bf16_supported")
    assert not native_bf16("cuda")


def test_explicit_dtypes_pass_through_and_auto_follows_the_hardware():
    for dtype in ("float32", "bfloat16", "float16"):
        assert engine_dtype(dtype, "cpu") == dtype
    assert engine_dtype("auto", "cpu") == ("bfloat16" if native_bf16("cpu") else "float32")


def test_an_auto_engine_loads_the_resolved_dtype(tiny_model_dir):
    engine = create_engine(tiny_model_dir, EngineConfig(name="hf", dtype="auto"))
    assert engine.model.dtype == (torch.bfloat16 if native_bf16("cpu") else torch.float32)


def test_training_precision_auto_follows_the_hardware():
    from meow.train.worker import uses_bf16

    cpu = torch.device("cpu")
    assert uses_bf16("bf16", cpu) and not uses_bf16("fp32", cpu)
    assert uses_bf16("auto", cpu) == native_bf16("cpu")
