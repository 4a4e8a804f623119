"""Unlearning methods by name: what each trains on. The losses themselves live in `meow.train.losses`.

A method declares the sequence groups each forget fact contributes to a batch, which groups the
frozen reference model scores, and its own arguments (typed; unknown keys are errors). Kept free
of torch imports so that specs (and the control plane) can validate method names cheaply.

Groups:
* `inverted`: the fact's selected inverted answers (MEOW), `sequences_per_fact` of them;
* `forget`: the fact's original answer;
* `idk`: a refusal answer to the fact's question (`meow.train.data.REFUSALS`);
* `retain`: a question/answer pair drawn at random from the retain set.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from meow.registry import Registry

GROUPS = ("inverted", "forget", "idk", "retain")


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeowArgs(NoArgs):
    # Sequences per fact, cycling through the selected answers: with k=3 the reference's
    # [top1, top2, top3, top1] (its 8 encodings per item, of which the loss uses the first 4).
    sequences_per_fact: int = Field(4, ge=1)


class MeowRetainArgs(MeowArgs):
    # Weight of the retain term: L = NLL(inverted) + alpha * NLL(retain).
    alpha: float = Field(1.0, ge=0)


class RetainArgs(NoArgs):
    # L = gamma * forget term + alpha * retain term (open-unlearning's GradDiff defaults).
    gamma: float = Field(1.0, ge=0)
    alpha: float = Field(1.0, ge=0)


class PreferenceArgs(NoArgs):
    beta: float = Field(0.1, gt=0)
    alpha: float = Field(1.0, ge=0)


class SimNPOArgs(NoArgs):
    beta: float = Field(4.5, gt=0)
    delta: float = 0.0
    gamma: float = Field(0.125, ge=0)
    alpha: float = Field(1.0, ge=0)


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    groups: tuple[str, ...]
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


METHODS: Registry[Method] = Registry("unlearning method")


def _register(method: Method) -> None:
    METHODS.register(method.name)(method)


_register(
    Method(
        name="meow",
        description="MEOW: next-token loss on the top-k inverted facts by MEMO; no retain data, no reference model",
        groups=("inverted",),
        args=MeowArgs,
    )
)
_register(
    Method(
        name="meow_retain",
        description="MEOW with a retain term (not in the paper): NLL(inverted) + alpha * NLL(retain)",
        groups=("inverted", "retain"),
        args=MeowRetainArgs,
    )
)
_register(Method(name="grad_ascent", description="GradAscent: -NLL on the forget answers", groups=("forget",)))
_register(
    Method(
        name="grad_diff",
        description="GradDiff: gamma * -NLL(forget) + alpha * NLL(retain)",
        groups=("forget", "retain"),
        args=RetainArgs,
    )
)
_register(
    Method(
        name="kl",
        description="KL: gamma * -NLL(forget) + alpha * KL(reference || model) on retain inputs",
        groups=("forget", "retain"),
        args=RetainArgs,
        kl_groups=("retain",),
    )
)
_register(
    Method(
        name="idk_po",
        description="IdkPO: NLL on refusal answers to the forget questions, together with the retain answers",
        groups=("idk", "retain"),
    )
)
_register(
    Method(
        name="idk_dpo",
        description="IdkDPO: DPO preferring a refusal over the forget answer, + alpha * NLL(retain)",
        groups=("idk", "forget", "retain"),
        args=PreferenceArgs,
        reference_groups=("idk", "forget"),
    )
)
_register(
    Method(
        name="npo",
        description="NPO: negative preference on the forget answers against the reference, + alpha * NLL(retain)",
        groups=("forget", "retain"),
        args=PreferenceArgs,
        reference_groups=("forget",),
    )
)
_register(
    Method(
        name="simnpo",
        description="SimNPO: reference-free NPO on the length-normalised forget NLL, + alpha * NLL(retain)",
        groups=("forget", "retain"),
        args=SimNPOArgs,
    )
)
