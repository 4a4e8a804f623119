"""Configuration of TOFU evaluation (method spec section 2)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from meow.engines import EngineConfig


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: EngineConfig = EngineConfig()
    # Reference (retain-only) model for forget quality when no `prepare` stage provides one.
    oracle: str | None = None
    # Rows per evaluation set (TOFU's ds_size).
    max_rows: int = Field(300, ge=1)
    max_new_tokens: int = Field(200, ge=1)
