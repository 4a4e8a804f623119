"""The pipeline spec: one typed schema shared by the CLI, the job API and the Helm chart.

A spec is data, never code: it names registered stages, methods and engines, model specs and
data locations. Unknown keys are errors, and every error names the key path and its YAML line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meow.evaluate.config import EvaluateConfig
from meow.invert.config import InvertConfig
from meow.memo.config import MemoConfig
from meow.models.resolve import is_remote
from meow.select.config import SelectConfig
from meow.train.config import PrepareConfig, UnlearnConfig

if TYPE_CHECKING:
    from meow.data import QARecord

STAGE_ORDER = ("prepare", "invert", "memo", "select", "unlearn", "evaluate", "report")


class SpecError(ValueError):
    """A spec that cannot run. Messages name the source, line and key path, never record text."""


class ForgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A TOFU split name (`forget01`) or a file/URI (JSONL, JSON, Parquet, CSV; local or s3://).
    source: str = "forget01"
    question_field: str = "question"
    answer_field: str = "answer"
    format: str | None = None

    def records(self) -> list[QARecord]:
        """The forget set's records (read through `meow.data.load_qa`: local files, s3:// or TOFU)."""
        from meow.data import FieldMapping, load_qa

        return load_qa(self.source, FieldMapping(self.question_field, self.answer_field), self.format)


class RayConfig(BaseModel):
    """Where the run executes: join `address` (or RAY_ADDRESS), else start a local Ray on 127.0.0.1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = None
    num_cpus: int | None = Field(None, ge=1)


class PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("meow-run", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    # The model to unlearn; with a `prepare` stage, the base the TOFU target and oracle start from.
    model: str = "smollm2"
    forget: ForgetSpec = ForgetSpec()
    stages: tuple[str, ...] = ("invert", "memo", "select", "unlearn")
    prepare: PrepareConfig = PrepareConfig()
    invert: InvertConfig = InvertConfig()
    memo: MemoConfig = MemoConfig()
    select: SelectConfig = SelectConfig()
    unlearn: UnlearnConfig = UnlearnConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    ray: RayConfig = RayConfig()
    seed: int = 42

    @field_validator("stages")
    @classmethod
    def _known_stages_in_order(cls, stages: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in stages if s not in STAGE_ORDER]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {list(STAGE_ORDER)}")
        if len(set(stages)) != len(stages):
            raise ValueError("a stage is listed twice")
        if list(stages) != sorted(stages, key=STAGE_ORDER.index):
            raise ValueError(f"stages must follow the order {list(STAGE_ORDER)}")
        return stages

    def resources(self) -> dict[str, float]:
        """What the largest stage of this run asks of the cluster at once."""
        train = [self.unlearn.train] + ([self.prepare.train] if "prepare" in self.stages else [])
        return {
            "workers": max(t.workers for t in train),
            "cpus": max(max(t.workers * t.cpus_per_worker for t in train), self.memo.actors, self.invert.actors),
            "gpus": max(t.workers * t.gpus_per_worker for t in train),
        }

    def uris(self) -> list[str]:
        """Every location this spec reads: data sources and model specs that are paths or URIs."""
        from meow.data.tofu import SPLITS
        from meow.models import EMBEDDED_MODELS

        found = []
        for data in (self.forget.source, self.unlearn.retain):
            if data and data not in SPLITS:
                found.append(data)
        for model in (self.model, self.invert.generator, self.evaluate.oracle):
            if model and model not in EMBEDDED_MODELS:
                found.append(model)
        return found

    def remote_uris(self) -> list[str]:
        return [u for u in self.uris() if is_remote(u)]

    def to_yaml(self) -> str:
        """The resolved spec, every default filled in."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_spec(text: str, source: str = "<spec>") -> PipelineSpec:
    """Parse and validate a YAML (or JSON) spec; raises `SpecError` naming line and key."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise SpecError(f"{source}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping of keys, got {type(data).__name__}")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError("\n".join(_describe(source, root, err) for err in e.errors())) from None


def load_spec_file(path: str | Path) -> PipelineSpec:
    return load_spec(Path(path).read_text(), source=str(path))


def _describe(source: str, root: yaml.Node | None, error: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc) or "(top level)"
    line = _line_of(root, loc)
    where = f"{source}, line {line}" if line else source
    # Pydantic echoes the offending input; spec values may be paths or text, so leave it out.
    return f"{where}, key {key}: {error['msg']}"


def _line_of(node: yaml.Node | None, loc: list[str]) -> int | None:
    """Line of the deepest YAML node along `loc` (the key itself when the value is missing)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                return line
            node, line = match[1], match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return line
    return line
