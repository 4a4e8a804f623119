"""Relearning attack: fine-tune a model on half of the forget set, see how much of the other half comes back.

White-box: it needs the weights behind a served name (`ProbeData.weights`), trains a copy with
a registered relearner, and asks the questions of the held-out half to the model before and
after, on a local engine, greedy, with the prompt meow evaluates with. Halves interleave (even
and odd positions), so both halves cover the same authors: recovery then measures how much
related knowledge the unlearning left in place. A model unlearned well recovers no more than
the oracle does when fine-tuned the same way.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from meow.data import QARecord
from meow.engines import EngineConfig, SamplingConfig, create_engine
from meow.models.templates import question_prompt
from meow.probe.attacks import ATTACKS, Attack, AttackSkipped, ProbeData, _mean
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
    """Fine-tune on half the forget set; ROUGE-L recall on the other half after relearning (and before)."""

    name = "relearn"
    Config = RelearnOptions
    models_in_parallel = False

    async def run(self, client, model, data: ProbeData) -> list[Row]:
        weights = data.weights.get(model)
        if weights is None:
            raise AttackSkipped(f"no local weights for {model!r}: relearning fine-tunes the model itself")
        train, held_out = data.forget[0::2], data.forget[1::2]
        relearner = RELEARNERS.get(self.config.trainer)
        with tempfile.TemporaryDirectory(dir=self.config.workdir) as tmp:
            relearned = await asyncio.to_thread(relearner, weights, train, Path(tmp) / model, self.config)
            before, after = await asyncio.to_thread(self._answers, [weights, relearned], held_out)
        return [
            {
                "index": record.index,
                "rouge_before": answer_scores(record.answer, old)["rouge_l_recall"],
                **answer_scores(record.answer, new),
                "output": new,
            }
            for record, old, new in zip(held_out, before, after)
        ]

    def aggregate(self, rows):
        after, before = self.statistic(rows), _mean(rows, "rouge_before")
        return {
            "rouge_l_recall": after,
            "exact_match": _mean(rows, "exact_match"),
            "rouge_l_recall_before": before,
            "recovery": after - before,
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
