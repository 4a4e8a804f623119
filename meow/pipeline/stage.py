"""What a stage is: a name, the part of the spec it depends on, the stages it reads, and `run`.

Stages know *what* they do; where they run (local Ray or a cluster, CPU or GPU, how many actors
and workers) comes from their config. A stage writes its artifacts into `ctx.dir`; the driver
writes the manifest once `run` returns, so a stage without a manifest is unfinished by definition.
A stage that can resume partial work (checkpoints, per-fact outputs) looks into `ctx.dir` first.
"""

from __future__ import annotations

import abc
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from meow.pipeline.rundir import RunDir
from meow.pipeline.spec import PipelineSpec

# Stage implementations by name, imported only when a run uses them (each pulls in torch, vLLM, ...).
STAGE_CLASSES = {
    "prepare": "meow.train.stages:PrepareStage",
    "invert": "meow.invert.stage:InvertStage",
    "memo": "meow.memo.stage:MemoStage",
    "select": "meow.select.stage:SelectStage",
    "unlearn": "meow.train.stages:UnlearnStage",
    "evaluate": "meow.evaluate.stage:EvaluateStage",
    "report": "meow.report.stage:ReportStage",
}


@dataclass
class StageContext:
    spec: PipelineSpec
    run: RunDir
    dir: Path
    log: logging.Logger

    def upstream(self, stage: str) -> Path:
        """The artifacts directory of an earlier stage of this run (which must have finished)."""
        return self.run.finished(stage)

    def model_to_unlearn(self) -> str:
        """The TOFU target when this run prepares one, else the spec's model."""
        if "prepare" in self.spec.stages:
            return str(self.upstream("prepare") / "target")
        return self.spec.model


class Stage(abc.ABC):
    name: ClassVar[str]
    # Stages whose outputs this one reads: their manifests are part of its inputs hash.
    reads: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: PipelineSpec):
        self.spec = spec

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The part of the spec this stage's result depends on (hashed to decide reruns)."""

    @abc.abstractmethod
    def run(self, ctx: StageContext) -> dict[str, Any]:
        """Do the work, write artifacts into `ctx.dir`, return a JSON-able summary for the manifest."""


def load_stage(name: str) -> type[Stage]:
    module, _, attr = STAGE_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
