"""What a job's run directory holds, read through fsspec (a local path or s3://).

Only the documented artifacts are reachable (the run's status, `evaluate/metrics.json`, files
directly under `report/`, and the location of `unlearn/model/`): a name from a URL is a plain
file name matched against a listing, never a path joined blindly.
"""

from __future__ import annotations

import json
from typing import Any

import fsspec

from meow.pipeline.rundir import ended_abnormally

STATUS = "status.json"
METRICS = "evaluate/metrics.json"
REPORT = "report"
MODEL = "unlearn/model"


class Artifacts:
    def __init__(self, run_dir: str):
        self.run_dir = run_dir.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.run_dir)

    def _path(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    def status(self) -> dict[str, Any] | None:
        """The driver's status.json (state, current stage, per-stage states), if it can be read yet.

        Advisory (job progress), so an unreachable store reads as "not yet" rather than an error.
        """
        try:
            with self.fs.open(self._path(STATUS)) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError):
            return None

    def end_abnormally(self, error: str, reason: str) -> None:
        """Record in status.json that the run failed, unless it recorded its end (its driver was
        killed before it could, or the run never started). Best effort, like `status`."""
        status = ended_abnormally(self.status() or {"state": "new", "stages": {}}, error, reason)
        if status is None:
            return
        path, tmp = self._path(STATUS), self._path(STATUS + ".tmp")
        try:
            with self.fs.open(tmp, "w") as f:
                json.dump(status, f, indent=2, sort_keys=True)
            self.fs.mv(tmp, path)
        except OSError:
            pass

    def report_files(self) -> list[str]:
        try:
            entries = self.fs.ls(self._path(REPORT), detail=True)
        except FileNotFoundError:
            return []
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "file")

    def summary(self) -> dict[str, Any]:
        has_model = self.fs.exists(self._path(f"{MODEL}/config.json"))
        return {
            "run_dir": self.run_dir,
            "model_uri": f"{self.run_dir}/{MODEL}" if has_model else None,
            "metrics": self.fs.exists(self._path(METRICS)),
            "report": self.report_files(),
        }

    def metrics(self) -> dict[str, Any] | None:
        try:
            with self.fs.open(self._path(METRICS)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def report_file(self, name: str) -> bytes | None:
        if name not in self.report_files():
            return None
        with self.fs.open(self._path(f"{REPORT}/{name}"), "rb") as f:
            return f.read()
