"""Configuration of TOFU evaluation (method spec section 2)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from meow.engines import EngineConfig
from meow.engines.base import Dtype


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # fp32 by default: these are measurements, and bf16 flips greedy tokens, which moves ROUGE-L and
    # model utility (docs/evaluation.md).
    engine: EngineConfig = EngineConfig()
    # Engine dtype for the models saved after each epoch but the last (`unlearn.train.save_epochs`),
    # the frontier's intermediate points; None: `engine.dtype`. Target, oracle and the final model
    # always use `engine`. `auto` (bf16 where native) evaluates about 2x faster on AMX cores but moved
    # FQ by one KS step on 2 of 8 models measured and MU by up to 6% through changed greedy generations
    # (benchmarks/eval_precision.py, docs/evaluation.md): for exploring recipes, not the reported frontier.
    frontier_dtype: Dtype | None = None
    # Reference (retain-only) model for forget quality when no `prepare` stage provides one.
    oracle: str | None = None
    # Rows per evaluation set (TOFU's ds_size).
    max_rows: int = Field(300, ge=1)
    # Tokens of question prompt + answer, as in training (TOFU's max_length): scored answers are cut
    # to fit, and greedy generation stops at this total length, as TOFU's generate(max_length=200).
    max_length: int = Field(200, ge=8)
    # Set to generate this many new tokens whatever the prompt length (open-unlearning's variant)
    # instead of filling up to `max_length`.
    max_new_tokens: int | None = Field(None, ge=1)
    # Engine actors per evaluated model, what each one holds, and requests per engine call.
    actors: int = Field(2, ge=1)
    cpus_per_actor: float = Field(1, gt=0)
    gpus_per_actor: float = Field(0, ge=0)
    # 256: larger engine calls decode more sequences per step; much larger leaves too few calls to
    # balance the long forget/retain examples over the actors (docs/engines.md).
    batch_size: int = Field(256, ge=1)
    # Reuse saved evaluations of byte-identical models under identical settings (MEOW_HOME/evaluations).
    cache: bool = True

    def with_dtype(self, dtype: Dtype) -> EvaluateConfig:
        """These settings with the engine computing in `dtype`."""
        return self.model_copy(update={"engine": self.engine.model_copy(update={"dtype": dtype})})
