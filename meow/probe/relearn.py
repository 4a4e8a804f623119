"""Relearning attack: fine-tune a model on part of the forget set, see how much of the rest comes back.

White-box: it needs the weights behind a served name (`ProbeData.weights`), trains a copy with
a registered relearner, and asks the questions of the held-out part to the model before and
after, on a local engine, greedy, with the prompt meow evaluates with. Parts interleave (even
and odd positions), so both cover the same authors: recovery then measures how much related
knowledge the unlearning left in place. A model unlearned well recovers no more than the oracle
does when fine-tuned the same way.

Bounded for CPUs: at most `max_train_records` facts (default 8) for `train.epochs` epochs of
`train.batch_size` (3 x 2 = 6 optimizer steps by default) and recall of at most
`max_recall_records` others; the headline is the share of those whose secret spans come back.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from meow.cluster import InsufficientMemory
from meow.data import QARecord
from meow.engines import EngineConfig, SamplingConfig, create_engine
from meow.models.templates import question_prompt
from meow.evaluate import leakage
from meow.probe.base import ATTACKS, Attack, AttackSkipped, ProbeData, _mean, secret
from meow.probe.scoring import Row, answer_scores
from meow.registry import Registry
from meow.train.config import TrainConfig


class RelearnOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A registered relearner (see RELEARNERS).
    trainer: str = "meow.train"
    # A few epochs of plain fine-tuning on the relearning half: the strength of the attack.
    train: TrainConfig = TrainConfig(
        learning_rate=2e-5, epochs=3, batch_size=4, micro_batch_size=4, warmup_epochs=0, workers=1
    )
    # The part of the forget set trained on (even positions, the first N) and recalled (odd positions).
    max_train_records: int = Field(8, ge=1)
    max_recall_records: int = Field(32, ge=1)
    max_tokens: int = Field(128, ge=1)
    # How answers are generated before and after relearning.
    engine: EngineConfig = EngineConfig()
    # Where relearned weights go (a temporary directory, removed afterwards, when unset).
    workdir: str | None = None

    @field_validator("trainer")
    @classmethod
    def _registered(cls, trainer: str) -> str:
        return RELEARNERS.validate(trainer)


class Relearner(Protocol):
    def __call__(self, model: str, records: list[QARecord], out_dir: Path, options: RelearnOptions) -> str:
        """Fine-tune `model` (a model spec) on `records`; return the spec of the result (under `out_dir`)."""


RELEARNERS: Registry[Relearner] = Registry("relearner")


@RELEARNERS.register("meow.train")
def meow_train(model: str, records: list[QARecord], out_dir: Path, options: RelearnOptions) -> str:
    """meow's own fine-tuning (Ray Train; NLL on the answers, as the TOFU target is made)."""
    from meow.cluster import ray_session
    from meow.models import resolve_model
    from meow.train.finetune import finetune

    with ray_session():
        finetune(resolve_model(model), records, options.train, out_dir, str(out_dir.parent / "checkpoints"), "relearn")
    return str(out_dir)


@ATTACKS.register("relearn")
class Relearn(Attack):
    """Fine-tune on part of the forget set; secret leakage of the rest after relearning (and before)."""

    name = "relearn"
    Config = RelearnOptions
    models_in_parallel = False

    async def run(self, client, model, data: ProbeData) -> list[Row]:
        weights = data.weights.get(model)
        if weights is None:
            raise AttackSkipped(f"no local weights for {model!r}: relearning fine-tunes the model itself")
        train = data.forget[0::2][: self.config.max_train_records]
        held_out = data.forget[1::2][: self.config.max_recall_records]
        relearner = RELEARNERS.get(self.config.trainer)
        with tempfile.TemporaryDirectory(dir=self.config.workdir) as tmp:
            try:
                relearned = await asyncio.to_thread(relearner, weights, train, Path(tmp) / model, self.config)
            except InsufficientMemory as e:
                # The other attacks' evidence stands; the report says why this one is missing.
                raise AttackSkipped(f"relearning could not train here: {e}") from None
            before, after = await asyncio.to_thread(self._answers, [weights, relearned], held_out)
        return [
            {
                "index": record.index,
                "rouge_before": answer_scores(record.answer, old)["rouge_l_recall"],
                "secret_before": leakage.span_hits(secret(record), [old])[leakage.EXACT],
                **answer_scores(record.answer, new),
                **leakage.span_hits(secret(record), [new]),
                "output": new,
                "output_before": old,
            }
            for record, old, new in zip(held_out, before, after)
        ]

    def aggregate(self, rows):
        after, before = _mean(rows, "rouge_l_recall"), _mean(rows, "rouge_before")
        secret_before = leakage.share(rows, "secret_before")
        return {
            **super().aggregate(rows),
            "rouge_l_recall_before": before,
            "recovery": after - before,
            "secret_leak_before": secret_before,
            "secret_recovery": self.statistic(rows) - secret_before,
        }

    def _answers(self, models: list[str], records: list[QARecord]) -> list[list[str]]:
        answers = []
        for model in models:
            engine = create_engine(model, self.config.engine)
            try:
                prompts = [question_prompt(engine.tokenizer, r.question) for r in records]
                outputs = engine.generate(prompts, SamplingConfig(max_new_tokens=self.config.max_tokens))
            finally:
                engine.close()
            answers.append([o.text for o in outputs])
        return answers
