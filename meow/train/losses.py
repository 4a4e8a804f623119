"""What a loss sees, and the building blocks every loss is made of (method spec 1.4 and section 4).

A loss sees per-sequence quantities of the current micro-batch (`LossInputs`), never logits: the
summed answer-token NLL under the model being trained and under the frozen reference, the answer
token counts, and KL(reference || model) summed over a sequence's positions (`meow.train.forward`
computes them). Every mean in a loss divides by the size of its reduction scope (`Scope`): the
whole optimizer step (then the sum of the micro-batch losses is exactly the step's loss, whatever
the micro-batch size or worker count) or one micro-batch (the reference's HF Trainer, which
averages micro-batch means). The losses themselves sit next to their methods in `meow.train.methods`.

Notation of meow-method.md section 4: NLL = token-mean cross-entropy over answer tokens,
logπ(y|x) = summed answer-token log-prob = -(summed NLL).

Free of module-level torch imports, as `meow.train.methods` is: the blocks only do arithmetic on the
tensors they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Scope:
    """Totals over a loss's reduction scope for one group (weighted by sequence multiplicity)."""

    sequences: float
    tokens: float  # answer (label) tokens
    positions: float  # attended positions (KL terms)


@dataclass
class GroupStats:
    """Per-sequence quantities of one group in one micro-batch; all tensors are [B]."""

    nll: torch.Tensor  # summed answer-token NLL under the model being trained
    tokens: torch.Tensor  # answer tokens
    weight: torch.Tensor  # multiplicity: identical sequences are computed once and weighted
    ref_nll: torch.Tensor | None = None  # summed answer-token NLL under the reference
    kl: torch.Tensor | None = None  # KL(reference || model) summed over attended positions


@dataclass
class LossInputs:
    groups: dict[str, GroupStats]
    scope: dict[str, Scope]


# A loss: the micro-batch's inputs and the method's validated arguments -> a scalar tensor.
LossFn = Callable[[LossInputs, Any], "torch.Tensor"]


def token_mean_nll(x: LossInputs, *groups: str) -> torch.Tensor:
    """HF's `model(..., labels).loss`: cross-entropy averaged over every answer token of `groups`."""
    total = sum((x.groups[g].weight * x.groups[g].nll).sum() for g in groups)
    return total / sum(x.scope[g].tokens for g in groups)


def sequence_mean(x: LossInputs, group: str, values: torch.Tensor) -> torch.Tensor:
    """Mean of one value per sequence of `group`."""
    return (x.groups[group].weight * values).sum() / x.scope[group].sequences


def kl_mean(x: LossInputs, group: str) -> torch.Tensor:
    """KL(reference || model) averaged over the attended positions of `group`."""
    stats = x.groups[group]
    return (stats.weight * stats.kl).sum() / x.scope[group].positions


def log_ratio(x: LossInputs, group: str) -> torch.Tensor:
    """logπ_θ(y|x) - logπ_ref(y|x) per sequence."""
    stats = x.groups[group]
    return stats.ref_nll - stats.nll


def preference_term(margin: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2/β) log σ(β · margin): the DPO/NPO/SimNPO shape (open-unlearning's scaling)."""
    import torch.nn.functional as F

    return -(2 / beta) * F.logsigmoid(beta * margin)
