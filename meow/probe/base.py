"""What every attack shares: the `Attack` interface, its registry, the data it probes.

Each attack asks one served model about the forget set and returns one row per probe (an example,
or an example at one prefix length) carrying the record `index`, its scores and the model's output.
`aggregate` summarises the rows; `statistic` is the headline number (higher = more leakage) that the
report compares across models, recomputable on resampled rows. The extraction attacks' headline is
secret-level leakage (`meow.evaluate.leakage`): the share of facts whose fact-bearing spans the
model's output contains.

The attacks live in `meow.probe.attacks` and `meow.probe.relearn`, both built on this module (and
registered when `meow.probe` is imported).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from meow.data import QARecord
from meow.evaluate import leakage
from meow.probe.client import ProbeClient
from meow.probe.scoring import Row
from meow.registry import Registry


class AttackSkipped(Exception):
    """The attack cannot run here (no paraphrases, no weights, no trainer); the reason goes in the report."""


@dataclass
class ProbeData:
    forget: list[QARecord]
    # Non-members for membership inference (same questions' counterfactual answers, or held-out facts).
    holdout: list[QARecord]
    seed: int = 0
    # Local weights of served models by served name (white-box attacks only).
    weights: dict[str, str] = field(default_factory=dict)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(128, ge=1)


def secret(record: QARecord) -> tuple[str, ...]:
    """The record's secret spans (`meow.evaluate.leakage.secret_spans`)."""
    return leakage.secret_spans(record.question, record.answer)


class Attack(abc.ABC):
    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = _Options
    headline: ClassVar[str] = "secret_leak"
    # Whether the runner may run this attack on several models at once.
    models_in_parallel: ClassVar[bool] = True

    def __init__(self, config: BaseModel):
        self.config = config

    @abc.abstractmethod
    async def run(self, client: ProbeClient, model: str, data: ProbeData) -> list[Row]: ...

    def aggregate(self, rows: list[Row]) -> dict[str, float]:
        """Secret leakage (exact and fuzzy, with 95% bootstrap bounds) and the answer-level scores."""
        return {
            **leakage.summary(rows),
            "rouge_l_recall": _mean(rows, "rouge_l_recall"),
            "exact_match": _mean(rows, "exact_match"),
        }

    def statistic(self, rows: list[Row]) -> float:
        """Share of facts leaked: a fact leaks when any of its rows' outputs contains one of its spans."""
        return leakage.share(rows)


ATTACKS: Registry[type[Attack]] = Registry("attack")


def _mean(rows: list[Row], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def attack(name: str, options: dict[str, Any] | None = None) -> Attack:
    cls = ATTACKS.get(name)
    return cls(cls.Config.model_validate(options or {}))
