"""The trained model out of its FSDP shards, as a plain HF directory both engines load.

The weights are gathered unsharded on rank 0's CPU, LoRA adapters merged, and saved in the base
model's dtype with its config, generation config, tokenizer and chat template.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from meow.train.trainer import TrainJob

# The HF directory's name inside the final checkpoint.
MODEL_DIR = "model"


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights, on rank 0's CPU (other ranks get an empty dict); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_hf(full: dict[str, torch.Tensor], job: TrainJob, out: Path) -> None:
    """A plain HF directory in the base model's dtype: the weights (LoRA merged) and the tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from meow.train.lora import merge_lora

    state = {key.removeprefix("model."): value for key, value in full.items()}
    if job.config.lora is not None:
        state = merge_lora(state, job.config.lora)
    model = AutoModelForCausalLM.from_pretrained(job.model_dir, dtype="auto")
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(job.model_dir).save_pretrained(out)


def export_epoch(scorer: nn.Module, job: TrainJob, rank: int, epoch: int) -> None:
    """The model after `epoch` as a plain HF directory at `<epochs_location>/epoch-<epoch>` (every rank
    takes part in gathering the weights; rank 0 writes)."""
    import fsspec

    full = full_state(scorer)
    if rank != 0:
        return
    fs, root = fsspec.core.url_to_fs(f"{job.epochs_location.rstrip('/')}/epoch-{epoch}")
    with tempfile.TemporaryDirectory() as directory:
        save_hf(full, job, Path(directory) / MODEL_DIR)
        if fs.exists(root):
            fs.rm(root, recursive=True)
        fs.put(str(Path(directory) / MODEL_DIR), root, recursive=True)
