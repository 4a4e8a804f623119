"""Configuration of the MEMO stage (method spec 1.2)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from meow.engines import EngineConfig


class MemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["suffix", "prefix"] = "suffix"
    stride: int = Field(5, ge=1)
    max_new_tokens: int = Field(200, ge=1)
    # exact = the reference definition; fast = the measured approximation (see docs).
    variant: Literal["exact", "fast"] = "exact"
    engine: EngineConfig = EngineConfig()
    actors: int = Field(2, ge=1)
    batch_size: int = Field(64, ge=1)
