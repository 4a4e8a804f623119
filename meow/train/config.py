"""Configuration of fine-tuning: the unlearning stage and the target/oracle preparation (method spec 1.4)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """Framework arguments (how to train), kept apart from a method's own arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(1e-5, gt=0)
    epochs: float = Field(10, gt=0)
    # Facts per optimizer step (the reference: 4 per device x 4 accumulation x 2 GPUs).
    batch_size: int = Field(32, ge=1)
    micro_batch_size: int = Field(4, ge=1)
    warmup_epochs: float = Field(1, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    max_length: int = Field(200, ge=8)
    precision: Literal["fp32", "bf16"] = "fp32"
    workers: int = Field(2, ge=1)
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 42


class UnlearnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A registered unlearning method (its loss and data); `method_args` are that method's own.
    method: str = "meow"
    method_args: dict[str, Any] = {}
    train: TrainConfig = TrainConfig()


class PrepareConfig(BaseModel):
    """TOFU target (trained on forget + retain) and retain oracle (trained without the forget authors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A named TOFU selection: `tofu-mini` (the default run) or `full`.
    selection: str = "tofu-mini"
    train: TrainConfig = TrainConfig(learning_rate=1e-5, epochs=5)
