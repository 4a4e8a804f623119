"""Configuration of the selection stage (method spec 1.3)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SelectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["largest", "smallest", "random"] = "largest"
    k: int = Field(3, ge=1)
    seed: int = 42
