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
from meow.pipeline.spec import STAGES, PipelineSpec

@dataclass
class StageContext:
    spec: PipelineSpec
    run: RunDir
    dir: Path
    log: logging.Logger
    # The hash of this stage's inputs (`meow.pipeline.driver.inputs_hash`): the same on a rerun with
    # the same inputs, so work named by it (a training run's checkpoints) resumes.
    inputs_hash: str

    def upstream(self, stage: str) -> Path:
        """The artifacts directory of an earlier stage of this run (which must have finished)."""
        return self.run.finished(stage)

    def model_to_unlearn(self) -> str:
        """The TOFU target when this run prepares one, else the spec's model."""
        return self.spec.given_model() or str(self.upstream("prepare") / "target")


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
    module, _, attr = STAGES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
