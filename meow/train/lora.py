"""Low-rank adapters (LoRA) written out in full: a few lines that train under FSDP2 and merge on save.

Why not a library: the adapters must (a) train with gradient checkpointing, where a frozen input
embedding leaves no tensor requiring grad for a re-entrant checkpoint to propagate through
(open-unlearning issue #178: LoRA B stays zero) — we use non-re-entrant checkpointing, which has
no such hole, and a test checks that B moves; (b) be merged into plain weights so the result is an
ordinary HF directory any engine loads.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from meow.train.config import LoraConfig

ADAPTER_KEYS = ("lora_a", "lora_b")


class LoraLinear(nn.Module):
    """`base(x) + scale * B(A(dropout(x)))` with `base` frozen, A random, B zero (the update starts at 0)."""

    def __init__(self, base: nn.Linear, config: LoraConfig):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(config.rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, config.rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(config.dropout) if config.dropout else nn.Identity()
        self.scale = config.alpha / config.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = nn.functional.linear(nn.functional.linear(self.dropout(x), self.lora_a), self.lora_b)
        return self.base(x) + self.scale * update


def apply_lora(model: nn.Module, config: LoraConfig) -> int:
    """Freeze `model` and put adapters on its target linear layers; returns how many were added."""
    for p in model.parameters():
        p.requires_grad_(False)
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if name in config.targets and isinstance(child, nn.Linear)
    ]
    if not targets:
        raise ValueError(f"no linear layer named any of {list(config.targets)} in this model")
    for parent, name, child in targets:
        setattr(parent, name, LoraLinear(child, config))
    return len(targets)


def merge_lora(state: dict[str, torch.Tensor], config: LoraConfig) -> dict[str, torch.Tensor]:
    """A full state dict with adapters folded into their base weights: W + scale * B @ A."""
    merged = {}
    scale = config.alpha / config.rank
    for key, value in state.items():
        if key.endswith(ADAPTER_KEYS):
            continue
        if key.endswith(".base.weight"):
            prefix = key[: -len(".base.weight")]
            a, b = state[prefix + ".lora_a"], state[prefix + ".lora_b"]
            merged[prefix + ".weight"] = value + scale * (b.float() @ a.float()).to(value.dtype)
        elif ".base." in key:
            merged[key.replace(".base.", ".")] = value
        else:
            merged[key] = value
    return merged
