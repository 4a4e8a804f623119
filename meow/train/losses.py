"""Every training loss, defined once and registered by name (method spec 1.4 and section 4).

A loss sees per-sequence quantities of the current micro-batch (`LossInputs`), never logits: the
summed answer-token NLL under the model being trained and under the frozen reference, the answer
token counts, and KL(reference || model) summed over a sequence's positions. Every mean in a loss
divides by the size of its reduction scope (`Scope`): the whole optimizer step (then the sum of
the micro-batch losses is exactly the step's loss, whatever the micro-batch size or worker count)
or one micro-batch (the reference's HF Trainer, which averages micro-batch means).

Notation of meow-method.md section 4: NLL = token-mean cross-entropy over answer tokens,
logπ(y|x) = summed answer-token log-prob = -(summed NLL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel

from meow.registry import Registry
from meow.train.methods import METHODS, NoArgs


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


# --- building blocks -------------------------------------------------------------------------


def per_token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log p(target) for each row of `logits` [N, V] (computed in fp32)."""
    return F.cross_entropy(logits.float(), targets, reduction="none")


def per_position_kl(logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_ref || p_model) at each row: sum_v p_ref (log p_ref - log p_model)."""
    log_p = logits.float().log_softmax(-1)
    log_ref = reference_logits.float().log_softmax(-1)
    return F.kl_div(log_p, log_ref, log_target=True, reduction="none").sum(-1)


def per_sequence_sum(values: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Sum the per-token `values` of each sequence (`rows` gives each token's sequence)."""
    return torch.zeros(n_rows, dtype=values.dtype, device=values.device).index_add(0, rows, values)


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
    return -(2 / beta) * F.logsigmoid(beta * margin)


# --- losses by name --------------------------------------------------------------------------

LossFn = Callable[[LossInputs, Any], torch.Tensor]
LOSSES: Registry[LossFn] = Registry("loss")


@LOSSES.register("finetune")
def finetune_loss(x: LossInputs, args: NoArgs) -> torch.Tensor:
    """Target/oracle preparation: NLL on the training answers."""
    return token_mean_nll(x, "answer")


@LOSSES.register("meow")
def meow_loss(x: LossInputs, args: NoArgs) -> torch.Tensor:
    """MEOW: NLL on the selected inverted answers."""
    return token_mean_nll(x, "inverted")


@LOSSES.register("meow_retain")
def meow_retain_loss(x: LossInputs, args) -> torch.Tensor:
    """MEOW anchored by the retain set, as GradDiff anchors gradient ascent: more forgetting per step
    at the same utility."""
    return meow_loss(x, args) + args.alpha * token_mean_nll(x, "retain")


@LOSSES.register("grad_ascent")
def grad_ascent_loss(x: LossInputs, args: NoArgs) -> torch.Tensor:
    return -token_mean_nll(x, "forget")


@LOSSES.register("grad_diff")
def grad_diff_loss(x: LossInputs, args) -> torch.Tensor:
    return args.gamma * -token_mean_nll(x, "forget") + args.alpha * token_mean_nll(x, "retain")


@LOSSES.register("kl")
def kl_loss(x: LossInputs, args) -> torch.Tensor:
    return args.gamma * -token_mean_nll(x, "forget") + args.alpha * kl_mean(x, "retain")


@LOSSES.register("idk_po")
def idk_po_loss(x: LossInputs, args: NoArgs) -> torch.Tensor:
    """One NLL over the concatenated [refusal-answered forget ; retain] batch."""
    return token_mean_nll(x, "idk", "retain")


@LOSSES.register("idk_dpo")
def idk_dpo_loss(x: LossInputs, args) -> torch.Tensor:
    """DPO with the refusal as the preferred answer and the original answer as the rejected one."""
    margin = log_ratio(x, "idk") - log_ratio(x, "forget")
    return sequence_mean(x, "forget", preference_term(margin, args.beta)) + args.alpha * token_mean_nll(x, "retain")


@LOSSES.register("npo")
def npo_loss(x: LossInputs, args) -> torch.Tensor:
    margin = -log_ratio(x, "forget")
    return sequence_mean(x, "forget", preference_term(margin, args.beta)) + args.alpha * token_mean_nll(x, "retain")


@LOSSES.register("simnpo")
def simnpo_loss(x: LossInputs, args) -> torch.Tensor:
    """Reference-free: the margin is the length-normalised forget NLL minus δ."""
    forget = x.groups["forget"]
    margin = forget.nll / forget.tokens - args.delta
    forget_term = sequence_mean(x, "forget", preference_term(margin, args.beta))
    return args.gamma * forget_term + args.alpha * token_mean_nll(x, "retain")


def method_loss(method: str, method_args: dict[str, Any]) -> tuple[LossFn, BaseModel]:
    """The registered loss of an unlearning method and its validated arguments."""
    return LOSSES.get(method), METHODS.get(method).args.model_validate(method_args)
