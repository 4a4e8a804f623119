"""Unlearning methods by name: what each trains on. The losses themselves live in `meow.train.losses`.

Kept free of torch imports so that specs (and the control plane) can validate method names cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meow.registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    # What the forget batch carries as answers.
    forget_answers: Literal["selected_inversions", "original", "idk"]
    uses_retain: bool
    uses_reference: bool


METHODS: Registry[Method] = Registry("unlearning method")

METHODS.register("meow")(
    Method(
        name="meow",
        description="MEOW: next-token loss on the top-k inverted facts by MEMO; no retain data, no reference model",
        forget_answers="selected_inversions",
        uses_retain=False,
        uses_reference=False,
    )
)
