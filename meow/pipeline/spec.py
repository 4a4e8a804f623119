"""The pipeline spec: one typed schema shared by the CLI, the job API and the Helm chart.

A spec is data, never code: it names registered stages, methods and engines, model specs and
data locations. Unknown keys are errors, and every error names the key path and its YAML line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meow.evaluate.config import EvaluateConfig
from meow.invert.config import InvertConfig
from meow.memo.config import MemoConfig
from meow.models.resolve import is_remote
from meow.select.config import SelectConfig
from meow.train.config import PrepareConfig, UnlearnConfig

if TYPE_CHECKING:
    from meow.data import FieldMapping, Limits, QARecord

# Every stage in run order, and its class (`meow.pipeline.stage.load_stage` imports it only when a
# run uses it: each pulls in torch, vLLM, ...).
STAGES = {
    "prepare": "meow.train.stages:PrepareStage",
    "invert": "meow.invert.stage:InvertStage",
    "memo": "meow.memo.stage:MemoStage",
    "select": "meow.select.stage:SelectStage",
    "unlearn": "meow.train.stages:UnlearnStage",
    "evaluate": "meow.evaluate.stage:EvaluateStage",
    "report": "meow.report.stage:ReportStage",
}
STAGE_ORDER = tuple(STAGES)


# What a job asks of the cluster (`PipelineSpec.resources`); memory in bytes.
RESOURCES = ("workers", "cpus", "gpus", "memory")


def _needs(workers: int, processes: int, cpus_each: float, gpus_each: float, memory_each: int) -> dict[str, float]:
    """Training workers, and CPUs, GPUs and memory of `processes` Ray workers or actors (engine actors
    hold one CPU each beside their GPUs, `meow.engines.pool`)."""
    return {
        "workers": workers,
        "cpus": processes * cpus_each,
        "gpus": processes * gpus_each,
        "memory": processes * memory_each,
    }


class SpecError(ValueError):
    """A spec that cannot run. Messages name the source, line and key path, never record text."""


class ForgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A TOFU split name (`forget01`) or a file/URI (JSONL, JSON, Parquet, CSV; local or s3://).
    source: str = "forget01"
    question_field: str = "question"
    answer_field: str = "answer"
    format: Literal["jsonl", "json", "parquet", "csv"] | None = None
    # Limits checked while the set streams (`meow validate`), also applied to a retain file: a
    # question or answer longer than `max_chars` characters, or more than `max_records` records, is
    # an error naming the line. A repeated question is an error unless `duplicates: warn`.
    max_chars: int = Field(8192, ge=1)
    max_records: int = Field(1_000_000, ge=1)
    duplicates: Literal["error", "warn"] = "error"

    def limits(self) -> Limits:
        from meow.data import Limits

        return Limits(max_chars=self.max_chars, max_records=self.max_records, setting="forget")

    def mapping(self) -> FieldMapping:
        from meow.data import FieldMapping

        return FieldMapping(self.question_field, self.answer_field)

    def records(self) -> list[QARecord]:
        """The forget set's records (read through `meow.data.load_qa`: local files, s3:// or TOFU)."""
        from meow.data import load_qa

        return load_qa(self.source, self.mapping(), self.format, limits=self.limits(), duplicates=self.duplicates)


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

    def given_model(self) -> str | None:
        """The model this run unlearns when it is the spec's `model` itself; None when a `prepare`
        stage makes it (the TOFU target in `prepare/target`, `StageContext.model_to_unlearn`). What
        a stage that reads the model to unlearn hashes: a prepared one is in prepare's manifest."""
        return None if "prepare" in self.stages else self.model

    def resources(self) -> dict[str, float]:
        """What the largest stage of this run asks of the cluster at once: training workers, and the
        CPUs, GPUs and memory of its training workers or engine actors. Only the stages this run lists
        count; stages run one after another (prepare trains the oracle, then the target)."""
        return {key: max((need[key] for need in self.stage_resources().values()), default=0) for key in RESOURCES}

    def stage_resources(self) -> dict[str, dict[str, float]]:
        """`RESOURCES` of each listed stage that asks the cluster for any (the others run in the driver)."""
        needs = {}
        for stage in self.stages:
            if stage in ("prepare", "unlearn"):
                train = self.prepare.train if stage == "prepare" else self.unlearn.train
                needs[stage] = _needs(
                    train.workers, train.workers, train.cpus_per_worker, train.gpus_per_worker, train.memory_per_worker
                )
            elif stage == "invert" and self.invert.endpoint is None:
                i = self.invert
                needs[stage] = _needs(0, i.actors, 1, i.gpus_per_actor, i.engine.memory_per_actor)
            elif stage == "memo":
                m = self.memo
                needs[stage] = _needs(0, m.actors, 1, m.gpus_per_actor, m.engine.memory_per_actor)
            elif stage == "evaluate":
                e = self.evaluate
                needs[stage] = _needs(0, e.actors, e.cpus_per_actor, e.gpus_per_actor, e.engine.memory_per_actor)
        return needs

    def locations(self) -> list[tuple[str, str]]:
        """(key, location) for everything this spec reads: data files and model specs that are not a
        packaged TOFU split or an embedded model. What the platform confines to a tenant's prefixes:
        a new path-like field belongs here (a platform test fails on unclassified string fields)."""
        from meow.data.tofu import SPLITS
        from meow.models import EMBEDDED_MODELS

        return [
            (key, value)
            for key, value, names in (
                ("forget.source", self.forget.source, SPLITS),
                ("unlearn.retain", self.unlearn.retain, SPLITS),
                ("model", self.model, EMBEDDED_MODELS),
                ("invert.generator", self.invert.generator, EMBEDDED_MODELS),
                ("evaluate.oracle", self.evaluate.oracle, EMBEDDED_MODELS),
            )
            if value is not None and value not in names
        ]

    def uris(self) -> list[str]:
        """Every location this spec reads: data sources and model specs that are paths or URIs."""
        return [location for _, location in self.locations()]

    def remote_uris(self) -> list[str]:
        return [u for u in self.uris() if is_remote(u)]

    def to_yaml(self) -> str:
        """The resolved spec, every default filled in."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# Nesting no real spec comes near (the deepest, `unlearn.method_args`, is 3 levels down) and nodes
# counted with every alias expanded: what YAML may ask of the parser and the validator at most.
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_ERRORS = 20


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than `MAX_DEPTH` while it composes (its composer
    recurses once per level: 3000 nested `[` would end in a RecursionError)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_spec(text: str, source: str = "<spec>") -> PipelineSpec:
    """Parse (once) and validate a YAML (or JSON) spec; raises `SpecError` naming line and key."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # reads the text: unprintable characters are refused here
        root = loader.get_single_node()
        _check_size(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise SpecError(f"{source}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except SpecError as e:
        raise SpecError(f"{source}, {e}") from None
    except (ValueError, OverflowError) as e:  # a scalar its tag cannot hold (`2026-13-45`)
        raise SpecError(f"{source}: a value cannot be read ({type(e).__name__})") from None
    finally:
        if loader is not None:
            loader.dispose()
    return validate_spec(data, source, root)


def validate_spec(data: Any, source: str = "<spec>", root: yaml.Node | None = None) -> PipelineSpec:
    """Validate parsed spec data (`root`, its YAML nodes if any, gives errors their lines)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping of keys, got {type(data).__name__}")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        described = [_describe(source, root, err) for err in errors[:MAX_ERRORS]]
        if len(errors) > MAX_ERRORS:
            described.append(f"{source}: {len(errors) - MAX_ERRORS} more errors")
        raise SpecError("\n".join(described)) from None


def check_nesting(data: Any, source: str = "<spec>") -> None:
    """Refuse parsed data (a JSON spec) nested deeper than `MAX_DEPTH` or larger than `MAX_NODES`
    values, without recursing: what `load_spec` refuses in YAML text."""
    pending, count = [(data, 1)], 0
    while pending:
        value, depth = pending.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise SpecError(f"{source}: nested deeper than {MAX_DEPTH} levels")
        if count > MAX_NODES:
            raise SpecError(f"{source}: more than {MAX_NODES} values")
        if isinstance(value, dict):
            pending.extend((v, depth + 1) for kv in value.items() for v in kv)
        elif isinstance(value, list | tuple):
            pending.extend((v, depth + 1) for v in value)


def _check_size(root: yaml.Node | None) -> None:
    """Refuse documents whose aliases expand to more than `MAX_NODES` nodes (a "billion laughs"
    costs nothing to parse and everything to validate) or refer to themselves."""
    sizes: dict[int, int] = {}
    pending: list[tuple[yaml.Node, bool]] = [(root, False)] if root is not None else []
    while pending:
        node, children_done = pending.pop()
        children = _children(node)
        if children_done:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_NODES:
                raise SpecError(f"line {node.start_mark.line + 1}: aliases expand to more than {MAX_NODES} values")
        elif id(node) not in sizes:
            sizes[id(node)] = -1  # being counted: meeting it again below it is a cycle
            pending.append((node, True))
            for child in children:
                if sizes.get(id(child)) == -1:
                    raise SpecError(f"line {child.start_mark.line + 1}: an alias refers to itself")
                if id(child) not in sizes:
                    pending.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


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
