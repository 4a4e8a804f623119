"""Unlearning methods by name: what each trains on, its arguments and its loss, side by side.

A method declares the sequence groups each forget fact contributes to a batch (built by
`meow.train.data.fact_source`), which groups the frozen reference model scores, its own arguments
(typed; unknown keys are errors) and its loss, written with the building blocks of
`meow.train.losses`. `METHODS` lists them all, in one place. Kept free of module-level torch
imports so that specs (and the control plane) can validate method names and arguments cheaply.

Groups:
* `inverted`: the fact's selected inverted answers (MEOW), `sequences_per_fact` of them;
* `forget`: the fact's original answer;
* `secret`: the fact's original answer with only its fact-bearing spans as labels
  (`meow.train.data.encode_secret`);
* `idk`: a refusal answer to the fact's question (`meow.train.data.REFUSALS`);
* `retain`: a question/answer pair drawn at random from the retain set;
* `answer`: a training pair's own answer (`FINETUNE`, the target/oracle preparation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from meow.registry import Registry
from meow.train.losses import (
    LossFn,
    LossInputs,
    kl_mean,
    log_ratio,
    preference_term,
    sequence_mean,
    token_mean_nll,
)

if TYPE_CHECKING:
    import torch


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    groups: tuple[str, ...]
    loss: LossFn
    args: type[NoArgs] = NoArgs
    # Groups whose summed answer log-prob the frozen reference model provides.
    reference_groups: tuple[str, ...] = ()
    # Groups on which the loss needs KL(reference || model) over every attended position.
    kl_groups: tuple[str, ...] = ()

    @property
    def uses_retain(self) -> bool:
        return "retain" in self.groups

    @property
    def uses_reference(self) -> bool:
        return bool(self.reference_groups or self.kl_groups)


# --- fine-tuning: the target and oracle (not an unlearning method) -----------------------------


def finetune_loss(x: LossInputs, args: NoArgs) -> torch.Tensor:
    """NLL on the training answers."""
    return token_mean_nll(x, "answer")


FINETUNE = Method(
    name="finetune",
    description="Fine-tuning: NLL on the training answers (the TOFU target and oracle)",
    groups=("answer",),
    loss=finetune_loss,
)


# --- MEOW -------------------------------------------------------------------------------------


class MeowArgs(NoArgs):
    # Sequences per fact, cycling through the selected answers: with k=3 the reference's
    # [top1, top2, top3, top1] (its 8 encodings per item, of which the loss uses the first 4).
    sequences_per_fact: int = Field(4, ge=1)


def meow_loss(x: LossInputs, args: NoArgs) -> torch.Tensor:
    """NLL on the selected inverted answers."""
    return token_mean_nll(x, "inverted")


MEOW = Method(
    name="meow",
    description="MEOW: next-token loss on the top-k inverted facts by MEMO; no retain data, no reference model",
    groups=("inverted",),
    loss=meow_loss,
    args=MeowArgs,
)


class MeowRetainArgs(MeowArgs):
    # Weight of the retain term: L = NLL(inverted) + alpha * NLL(retain).
    alpha: float = Field(1.0, ge=0)


def meow_retain_loss(x: LossInputs, args: MeowRetainArgs) -> torch.Tensor:
    """MEOW anchored by the retain set, as GradDiff anchors gradient ascent: more forgetting per step
    at the same utility."""
    return meow_loss(x, args) + args.alpha * token_mean_nll(x, "retain")


MEOW_RETAIN = Method(
    name="meow_retain",
    description="MEOW with a retain term (not in the paper): NLL(inverted) + alpha * NLL(retain)",
    groups=("inverted", "retain"),
    loss=meow_retain_loss,
    args=MeowRetainArgs,
)


# --- gradient ascent and its anchored variants ------------------------------------------------


def grad_ascent_loss(x: LossInputs, args: NoArgs) -> torch.Tensor:
    return -token_mean_nll(x, "forget")


GRAD_ASCENT = Method(
    name="grad_ascent", description="GradAscent: -NLL on the forget answers", groups=("forget",), loss=grad_ascent_loss
)


class RetainArgs(NoArgs):
    # L = gamma * forget term + alpha * retain term (open-unlearning's GradDiff defaults).
    gamma: float = Field(1.0, ge=0)
    alpha: float = Field(1.0, ge=0)


def grad_diff_loss(x: LossInputs, args: RetainArgs) -> torch.Tensor:
    return args.gamma * -token_mean_nll(x, "forget") + args.alpha * token_mean_nll(x, "retain")


GRAD_DIFF = Method(
    name="grad_diff",
    description="GradDiff: gamma * -NLL(forget) + alpha * NLL(retain)",
    groups=("forget", "retain"),
    loss=grad_diff_loss,
    args=RetainArgs,
)


def kl_loss(x: LossInputs, args: RetainArgs) -> torch.Tensor:
    return args.gamma * -token_mean_nll(x, "forget") + args.alpha * kl_mean(x, "retain")


KL = Method(
    name="kl",
    description="KL: gamma * -NLL(forget) + alpha * KL(reference || model) on retain inputs",
    groups=("forget", "retain"),
    loss=kl_loss,
    args=RetainArgs,
    kl_groups=("retain",),
)


# --- refusals ---------------------------------------------------------------------------------


def idk_po_loss(x: LossInputs, args: NoArgs) -> torch.Tensor:
    """One NLL over the concatenated [refusal-answered forget ; retain] batch."""
    return token_mean_nll(x, "idk", "retain")


IDK_PO = Method(
    name="idk_po",
    description="IdkPO: NLL on refusal answers to the forget questions, together with the retain answers",
    groups=("idk", "retain"),
    loss=idk_po_loss,
)


class PreferenceArgs(NoArgs):
    beta: float = Field(0.1, gt=0)
    alpha: float = Field(1.0, ge=0)


def idk_dpo_loss(x: LossInputs, args: PreferenceArgs) -> torch.Tensor:
    """DPO with the refusal as the preferred answer and the original answer as the rejected one."""
    margin = log_ratio(x, "idk") - log_ratio(x, "forget")
    return sequence_mean(x, "forget", preference_term(margin, args.beta)) + args.alpha * token_mean_nll(x, "retain")


IDK_DPO = Method(
    name="idk_dpo",
    description="IdkDPO: DPO preferring a refusal over the forget answer, + alpha * NLL(retain)",
    groups=("idk", "forget", "retain"),
    loss=idk_dpo_loss,
    args=PreferenceArgs,
    reference_groups=("idk", "forget"),
)


# --- negative preference ----------------------------------------------------------------------


def npo_term(x: LossInputs, beta: float, group: str = "forget") -> torch.Tensor:
    """Negative preference on `group`'s answers (the forget answers by default):
    -(2/β) mean log σ(-β(logπθ - logπref)(y_f))."""
    return sequence_mean(x, group, preference_term(-log_ratio(x, group), beta))


def npo_loss(x: LossInputs, args: PreferenceArgs) -> torch.Tensor:
    return npo_term(x, args.beta) + args.alpha * token_mean_nll(x, "retain")


NPO = Method(
    name="npo",
    description="NPO: negative preference on the forget answers against the reference, + alpha * NLL(retain)",
    groups=("forget", "retain"),
    loss=npo_loss,
    args=PreferenceArgs,
    reference_groups=("forget",),
)


class MeowNPOArgs(MeowRetainArgs):
    # L = NLL(inverted) + gamma * NPO(forget) + alpha * NLL(retain). The NPO term's gradient is on
    # summed (not token-mean) answer log-probs, tens of times a token-mean NLL's for TOFU's answers:
    # gamma scales it down to the size of the MEOW term.
    beta: float = Field(0.1, gt=0)
    gamma: float = Field(0.25, ge=0)


def meow_npo_loss(x: LossInputs, args: MeowNPOArgs) -> torch.Tensor:
    """MEOW that also pushes the original answer below the reference's (NPO), anchored by the retain
    set: the inverted facts raise the alternatives, the NPO term lowers the fact itself."""
    return meow_retain_loss(x, args) + args.gamma * npo_term(x, args.beta)


MEOW_NPO = Method(
    name="meow_npo",
    description="MEOW with NPO on the original answers and a retain term (not in the paper): "
    "NLL(inverted) + gamma * NPO(forget) + alpha * NLL(retain)",
    groups=("inverted", "forget", "retain"),
    loss=meow_npo_loss,
    args=MeowNPOArgs,
    reference_groups=("forget",),
)


class MeowSecretArgs(MeowNPOArgs):
    # The secret is a few tokens per answer, not the whole answer: a gamma 4x meow_npo's gives its
    # NPO term a gradient of about the MEOW term's size (docs/results.md: the trials).
    gamma: float = Field(1.0, ge=0)


def meow_secret_loss(x: LossInputs, args: MeowSecretArgs) -> torch.Tensor:
    """`meow_npo` with the NPO term on the fact-bearing words of the original answer only: a
    paraphrase of the fact keeps those words and changes the rest, so lowering them, and not the
    answer's wording, is what forgetting the fact means; the wording stays for utility."""
    return meow_retain_loss(x, args) + args.gamma * npo_term(x, args.beta, "secret")


MEOW_SECRET = Method(
    name="meow_secret",
    description="MEOW with NPO on the original answers' fact-bearing spans and a retain term (not in the "
    "paper): NLL(inverted) + gamma * NPO(secret spans) + alpha * NLL(retain)",
    groups=("inverted", "secret", "retain"),
    loss=meow_secret_loss,
    args=MeowSecretArgs,
    reference_groups=("secret",),
)


class SimNPOArgs(NoArgs):
    beta: float = Field(4.5, gt=0)
    delta: float = 0.0
    gamma: float = Field(0.125, ge=0)
    alpha: float = Field(1.0, ge=0)


def simnpo_loss(x: LossInputs, args: SimNPOArgs) -> torch.Tensor:
    """Reference-free: the margin is the length-normalised forget NLL minus δ."""
    forget = x.groups["forget"]
    margin = forget.nll / forget.tokens - args.delta
    forget_term = sequence_mean(x, "forget", preference_term(margin, args.beta))
    return args.gamma * forget_term + args.alpha * token_mean_nll(x, "retain")


SIMNPO = Method(
    name="simnpo",
    description="SimNPO: reference-free NPO on the length-normalised forget NLL, + alpha * NLL(retain)",
    groups=("forget", "retain"),
    loss=simnpo_loss,
    args=SimNPOArgs,
)


METHODS: Registry[Method] = Registry(
    "unlearning method",
    [(m.name, m) for m in (MEOW, MEOW_RETAIN, MEOW_NPO, MEOW_SECRET, GRAD_ASCENT, GRAD_DIFF, KL, IDK_PO, IDK_DPO, NPO, SIMNPO)],
)
