"""Generation engines behind one interface, registered by name."""

from __future__ import annotations

from pathlib import Path

from meow.engines.base import Engine, EngineConfig, Generation, SamplingConfig


def _vllm(model_dir: Path, config: EngineConfig) -> Engine:
    from meow.engines.vllm_engine import VLLMEngine

    return VLLMEngine(model_dir, config)


def _hf(model_dir: Path, config: EngineConfig) -> Engine:
    from meow.engines.hf_engine import HFEngine

    return HFEngine(model_dir, config)


# Imported lazily: importing vllm costs seconds and patches torch globals.
ENGINES = {"vllm": _vllm, "hf": _hf}


def create_engine(model: str | Path, config: EngineConfig = EngineConfig()) -> Engine:
    """An engine for a model spec (embedded name, local HF directory or s3:// URI)."""
    from meow.models import resolve_model

    return ENGINES[config.name](resolve_model(str(model)), config)


__all__ = ["ENGINES", "Engine", "EngineConfig", "Generation", "SamplingConfig", "create_engine"]
