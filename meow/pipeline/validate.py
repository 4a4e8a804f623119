"""Check a run before it spends compute: the spec, every record of the forget and retain sets, the
model references and the run location, in-process (no Ray, no engine, no model conversion) and
without writing anything.

`meow validate`, `meow unlearn`, `meow run` and the platform's job submit all call `check_text` /
`check_file`; a failure is one `InvalidRun` whose message is a single line naming the file and the
line (`pipelines/x.yaml, line 7, key forget.source: ...`, `forget.jsonl, line 3: malformed JSON`).
Messages carry locations, keys and counts, never record text (the forget set is what is erased).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meow.data.readers import FieldMapping, Limits, iter_records, storage_error
from meow.data.records import DataError
from meow.models.resolve import ModelSpecError, is_remote
from meow.pipeline.spec import PipelineSpec, SpecError, load_spec


class InvalidRun(ValueError):
    """A run that must not start; the message is one line naming the file (and line, key) at fault."""


# Errors bad input raises: their messages carry locations, keys and counts, never record text, so
# they are what the user sees (`one_line`), not a traceback.
INPUT_ERRORS = (InvalidRun, DataError, SpecError, ModelSpecError)


def one_line(error: Exception) -> str:
    """The first line of an input error's message, with how many more there are."""
    lines = str(error).splitlines() or [type(error).__name__]
    return lines[0] + (f" (+{len(lines) - 1} more)" if len(lines) > 1 else "")


@dataclass
class Checked:
    """What a successful check found (counts only)."""

    spec: PipelineSpec
    source: str
    forget_records: int
    retain_records: int | None = None
    models: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        retain = f", retain {self.retain_records} records" if self.retain_records is not None else ""
        models = ", ".join(f"{key} {model}" for key, model in self.models.items())
        return (
            f"{self.source}: valid ({self.spec.forget.source}: {self.forget_records} records{retain}; {models}) "
            f"in {self.seconds:.2f} s"
        )


def check_file(
    path: str | Path, forget: str | None = None, run_dir: str | None = None, model: str | None = None, **options: Any
) -> Checked:
    """`check_text` of a spec file; a missing or unreadable file is an `InvalidRun` too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRun(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InvalidRun(f"{path}: is a directory, not a spec file") from None
    except UnicodeDecodeError as e:
        raise InvalidRun(f"{path}: not valid UTF-8 (byte {e.start}); save the spec as UTF-8") from None
    except OSError as e:
        raise InvalidRun(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    return check_text(text, str(path), forget, run_dir, model=model, **options)


def check_text(
    text: str,
    source: str = "<spec>",
    forget: str | None = None,
    run_dir: str | None = None,
    storage_options: dict[str, Any] | None = None,
    model: str | None = None,
) -> Checked:
    """Validate a spec (YAML text) and everything it names; `forget` overrides `forget.source` and
    `model` the model to unlearn (the CLI's `--forget`, `--model`). Returns what was checked, or
    raises `InvalidRun` with one line."""
    started = time.perf_counter()
    try:
        spec = load_spec(text, source)
    except SpecError as e:
        lines = str(e).splitlines() or [f"{source}: invalid spec"]
        more = f" (+{len(lines) - 1} more errors)" if len(lines) > 1 else ""
        raise InvalidRun(lines[0] + more) from None
    if forget:
        spec = spec.model_copy(update={"forget": spec.forget.model_copy(update={"source": forget})})
    if model:
        spec = spec.model_copy(update={"model": model})
    keys = _KeyLines(text, source)
    at_forget = _At(source, "--forget", option=True) if forget else keys.at("forget", "source")
    found = Checked(spec=spec, source=source, forget_records=0)
    found.forget_records = _check_data(
        spec.forget.source, at_forget, spec.forget.mapping(), spec.forget.format, spec.forget.limits(),
        spec.forget.duplicates, storage_options,
    )
    retain = spec.unlearn.retain
    if retain and "unlearn" in spec.stages:
        found.retain_records = _check_data(
            retain, keys.at("unlearn", "retain"), FieldMapping(), None, spec.forget.limits(), "ignore",
            storage_options,
        )
    _check_retain_needed(spec, keys)
    for path, value in _models(spec):
        at = _At(source, "--model", option=True) if model and path == ("model",) else keys.at(*path)
        found.models[".".join(path)] = f"{value} ({_check_model(value, at, storage_options)})"
    if run_dir:
        _check_run_dir(run_dir, storage_options)
    found.seconds = time.perf_counter() - started
    return found


@dataclass(frozen=True)
class _At:
    """A spec key and where it is (`x.yaml, line 7, key forget.source`), or a CLI option."""

    source: str
    key: str
    line: int | None = None
    option: bool = False

    def __str__(self) -> str:
        if self.option:
            return self.key
        return f"{self.source}{f', line {self.line}' if self.line else ''}, key {self.key}"

    def named_by(self) -> str:
        if self.option:
            return f"named by {self.key}"
        return f"named by {self.key} in {self.source}{f', line {self.line}' if self.line else ''}"


class _KeyLines:
    """The YAML line of each spec key, for errors about its value."""

    def __init__(self, text: str, source: str):
        self.source = source
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self.root = None

    def at(self, *path: str) -> _At:
        node, line = self.root, None
        for part in path:
            if not isinstance(node, yaml.MappingNode):
                line = None
                break
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                line = None
                break
            node, line = match[1], match[0].start_mark.line + 1
        return _At(self.source, ".".join(path), line)


def _check_data(
    source: str,
    at: _At,
    mapping: FieldMapping,
    fmt: str | None,
    limits: Limits,
    duplicates: str,
    storage_options: dict[str, Any] | None,
) -> int:
    """Stream every record of a data source (a TOFU split or a file/URI); returns the count."""
    from meow.data.tofu import SPLITS, load_tofu, looks_like_split, unknown_split

    if source in SPLITS:
        return len(load_tofu(source))
    if looks_like_split(source):
        raise InvalidRun(f"{at}: {unknown_split(source)}")
    try:
        return sum(
            1 for _ in iter_records(source, mapping, fmt, storage_options, limits=limits, duplicates=duplicates)
        )
    except DataError as e:
        if e.line is None and e.record is None and not at.option:
            # A file-level problem (not found, a directory, credentials): say which key named it.
            raise InvalidRun(f"{e} ({at.named_by()})") from e
        raise InvalidRun(str(e)) from e


def _check_retain_needed(spec: PipelineSpec, keys: _KeyLines) -> None:
    """A method that trains on retain data needs a retain set the unlearn stage can find
    (`meow.train.stages.UnlearnStage._retain`): say so now, not after the earlier stages ran."""
    if "unlearn" not in spec.stages or spec.unlearn.retain or "prepare" in spec.stages:
        return
    from meow.data.tofu import SPLITS
    from meow.train.methods import METHODS

    if spec.unlearn.method not in METHODS or not METHODS.get(spec.unlearn.method).uses_retain:
        return
    source = spec.forget.source
    if source.startswith("forget") and source in SPLITS:
        complement = f"retain{100 - int(source.removeprefix('forget')):02d}"
        if complement in SPLITS:
            return
    raise InvalidRun(
        f"{keys.at('unlearn', 'method')}: method {spec.unlearn.method!r} needs a retain set; "
        "set unlearn.retain (a TOFU split or a file/URI)"
    )


def _models(spec: PipelineSpec) -> list[tuple[tuple[str, ...], str]]:
    """The model references this run loads, by spec key."""
    found: list[tuple[tuple[str, ...], str]] = [(("model",), spec.model)]
    if "invert" in spec.stages and spec.invert.endpoint is None:
        found.append((("invert", "generator"), spec.invert.generator))
    if "evaluate" in spec.stages and "prepare" not in spec.stages and spec.evaluate.oracle:
        found.append((("evaluate", "oracle"), spec.evaluate.oracle))
    return found


def _check_model(value: str, at: _At, storage_options: dict[str, Any] | None) -> str:
    """`embedded`, `directory` or `remote` for a usable model reference; `InvalidRun` otherwise.
    An embedded model is not converted here (that is the run's first use of it)."""
    from meow.models import EMBEDDED_MODELS

    if value in EMBEDDED_MODELS:
        return "embedded"
    known = ", ".join(sorted(EMBEDDED_MODELS))
    if is_remote(value):
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(value.rstrip("/"), **(storage_options or {}))
            has_config = fs.exists(f"{root}/config.json")
        except Exception as e:  # noqa: BLE001 - storage failures become one line; others re-raise
            problem = storage_error(value, e)
            if problem is None:
                raise
            raise InvalidRun(f"{at}: {problem}") from e
        if not has_config:
            raise InvalidRun(f"{at}: {value}: no config.json under this prefix (a Hugging Face model directory)")
        return "remote"
    path = Path(value.removeprefix("file://")).expanduser()
    if not path.exists():
        raise InvalidRun(f"{at}: {value!r} is neither an embedded model ({known}) nor an existing directory")
    if not (path / "config.json").is_file():
        raise InvalidRun(f"{at}: {value}: not a Hugging Face model directory (no config.json)")
    return "directory"


def _check_run_dir(run_dir: str, storage_options: dict[str, Any] | None) -> None:
    """A local run directory must not be a file; a remote one must be reachable with credentials."""
    if not is_remote(run_dir):
        path = Path(run_dir).expanduser()
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise InvalidRun(f"--run-dir: {existing} is a file, not a directory")
        if existing is not None and not os.access(existing, os.W_OK):
            raise InvalidRun(f"--run-dir: {existing} is not writable")
        return
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(run_dir, **(storage_options or {}))
        fs.info(root)  # not `exists`: s3fs answers False for missing credentials too
    except FileNotFoundError:
        return  # a new run directory
    except Exception as e:  # noqa: BLE001 - storage failures become one line; others re-raise
        problem = storage_error(run_dir, e)
        if problem is None:
            raise
        raise InvalidRun(f"--run-dir: {problem}") from e
