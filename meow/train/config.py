"""Configuration of fine-tuning: the unlearning stage and the target/oracle preparation (method spec 1.4).

Defaults follow the released MEOW recipe (lr 1e-5, AdamW wd 0.01, 32 facts per step, 10 epochs,
warm-up over the first epoch, max length 200, seed 42, gradient clipping at 1.0 as the HF Trainer
does). Departures are options, each documented and measured in docs/training.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from meow.quantities import Memory, gib


class LoraConfig(BaseModel):
    """Low-rank adapters on the named linear layers; merged into the weights when the model is saved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(16, ge=1)
    alpha: float = Field(32, gt=0)
    # The reference's LoRA dropout is 0.05; 0 keeps runs with any worker count bit-comparable.
    dropout: float = Field(0.0, ge=0, lt=1)
    # Linear-layer names (the last part of the module path); Llama/Qwen/Mistral naming by default.
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainConfig(BaseModel):
    """Framework arguments (how to train), kept apart from a method's own arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(1e-5, gt=0)
    epochs: float = Field(10, gt=0)
    # Facts per optimizer step (the reference: 4 per device x 4 accumulation x 2 GPUs).
    batch_size: int = Field(32, ge=1)
    # Facts per forward/backward pass on one worker (memory, not results: see loss_reduction).
    micro_batch_size: int = Field(4, ge=1)
    warmup_epochs: float = Field(1, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    # Gradient-norm clipping (the HF Trainer's default of 1.0 is what the reference ran with); 0 = off.
    max_grad_norm: float = Field(1.0, ge=0)
    max_length: int = Field(200, ge=8)
    # Mean of every loss term over the whole optimizer step ("step": independent of micro-batch size
    # and worker count) or over each micro-batch, then averaged (the reference's HF Trainer).
    loss_reduction: Literal["step", "microbatch"] = "step"
    # bf16 = fp32 master weights and optimizer, bf16 autocast for the forward/backward. auto = bf16
    # where the worker's device computes it natively, else fp32 (`meow.hardware`: emulated bf16 ran a
    # `prepare` step 10x slower than fp32 on an AVX2-only CPU).
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    lora: LoraConfig | None = None
    gradient_checkpointing: bool = False
    # Sequences of a micro-batch that share their prompt (MEOW's inverted answers of one fact) run as
    # one row: the prompt once, each answer attending to it and to itself only. The same loss up to
    # float rounding, fewer positions computed. Applies to methods without a reference model, with
    # PyTorch SDPA attention (the transformers default); anything else runs padded rows.
    share_prompts: bool = True
    # FSDP2: free the gathered parameters after each forward (ZeRO-3 memory) or keep them until the
    # step's last backward (fewer all-gathers; what CPUs with ample memory want).
    reshard_after_forward: bool = True
    workers: int = Field(2, ge=1)
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0)
    memory_per_worker: Memory = Field(
        gib(4.5),
        description=(
            "Memory Ray reserves for each training worker (bytes or a size such as 4.5GiB). Ray starts a "
            "worker only where that much is unreserved, so runs sharing a node wait for each other instead "
            "of Ray's OOM killer ending them. The default fits SmolLM2-135M (an FSDP worker peaks at about "
            "4.5 GB); a larger model needs more. Placement only: not part of a prepared model's cache key."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Also export the model after every whole epoch but the last (`<stage>/epochs/epoch-<k>/`), so the
    # evaluation can draw the forget-quality / model-utility frontier along the training.
    save_epochs: bool = False
    # Save a resumable checkpoint every this many optimizer steps (0: only the final model).
    checkpoint_every: int = Field(4, ge=0)
    # Worker losses (OOM kills, preemption) tolerated: the group restarts from the last checkpoint.
    max_failures: int = Field(2, ge=0)
    seed: int = 42


class UnlearnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A registered unlearning method (its loss and data); `method_args` are that method's own.
    method: str = "meow"
    method_args: dict[str, Any] = {}
    # Retain set for methods that use one (TOFU split name or file/URI). Unset: the prepared
    # target's retain authors when the run prepares one, else the TOFU retain split that
    # complements a TOFU forget split (forget01 -> retain99).
    retain: str | None = None
    train: TrainConfig = TrainConfig()

    @field_validator("method")
    @classmethod
    def _registered_method(cls, method: str) -> str:
        from meow.train.methods import METHODS

        return METHODS.validate(method)

    @model_validator(mode="after")
    def _method_args_are_the_methods(self) -> UnlearnConfig:
        from meow.train.methods import METHODS

        METHODS.get(self.method).args.model_validate(self.method_args)
        return self


# TOFU fine-tunes its 7B target for 5 epochs at 1e-5; SmolLM2-135M needs 2e-4 to memorise TOFU-mini
# in 5 epochs (forget-answer probability 0.14 -> 0.90, unseen authors stay at 0.13; docs/training.md).
PREPARE_TRAIN = TrainConfig(learning_rate=2e-4, epochs=5, batch_size=16)


class PrepareConfig(BaseModel):
    """TOFU target (trained on forget + retain) and retain oracle (trained without the forget authors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # `tofu-mini`: the forget set plus the first `mini_retain_authors` TOFU authors (the default
    # run); `full`: the forget set plus every other TOFU author (the TOFU recipe, for GPUs).
    selection: Literal["tofu-mini", "full"] = "tofu-mini"
    mini_retain_authors: int = Field(4, ge=1, le=20)
    # Reuse prepared models from MEOW_HOME/prepared/<content hash> (same base, data, config).
    cache: bool = True
    train: TrainConfig = PREPARE_TRAIN

    @field_validator("train", mode="before")
    @classmethod
    def _over_the_prepare_recipe(cls, train: Any) -> Any:
        # A spec that sets only `workers` must keep this recipe, not fall back to the unlearning one.
        if isinstance(train, dict):
            return {**PREPARE_TRAIN.model_dump(), **train}
        return train
