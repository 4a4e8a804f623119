"""The driver: runs a spec's stages in order, skipping the ones already finished with the same inputs.

A stage's inputs hash covers its own config, the manifests of the stages it reads and the forget
set; a rerun recomputes a stage only when that hash changed, and everything downstream of a
recomputed stage follows. A failing stage leaves the earlier stages' artifacts and manifests intact,
and its own partial artifacts for the rerun to resume from.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meow import hardware
from meow.cluster import ray_session
from meow.pipeline.rundir import RunDir, stable_hash, versions
from meow.pipeline.spec import PipelineSpec
from meow.pipeline.stage import Stage, StageContext, load_stage
from meow.telemetry import gauge

log = logging.getLogger("meow.pipeline")


def inputs_hash(stage: Stage, run: RunDir) -> str:
    upstream = {}
    for name in stage.reads:
        if name in stage.spec.stages:
            manifest = run.manifest(name) or {}
            upstream[name] = manifest.get("completion")
    # The forget set's limits decide whether a run may start, not what it computes.
    forget = stage.spec.forget.model_dump(exclude={"max_chars", "max_records", "duplicates"})
    return stable_hash({"stage": stage.name, "config": stage.config(), "forget": forget, "upstream": upstream})


def default_run_dir(spec: PipelineSpec) -> str:
    """`$MEOW_RUNS/<spec name>` (`runs/<spec name>` by default)."""
    return str(Path(os.environ.get("MEOW_RUNS", "runs")) / spec.name)


def run_pipeline(spec: PipelineSpec, location: str, only: list[str] | None = None, force: bool = False) -> RunDir:
    """Run (or resume) `spec` in the run directory at `location`; returns it when every stage finished.

    The one entry point of a run: `meow unlearn`/`meow run`, `python -m meow.pipeline run` and the
    platform's job driver (`meow_platform.jobrun`) check the spec (`meow.pipeline.validate`), then
    call this. `only`: run just these of the spec's stages (their inputs must be finished)."""
    run = RunDir(location)
    run.pull()
    # The `run` label of every metric this run exports (workers inherit the environment).
    os.environ["MEOW_RUN_NAME"] = spec.name
    (run.path / "spec.yaml").write_text(spec.to_yaml())
    names = [s for s in spec.stages if only is None or s in only]
    run.update_status(
        state="running", name=spec.name, location=run.location, error=None, reason=None,
        stages={n: {"state": "pending"} for n in names},
    )
    current = None
    try:
        with _terminate_as_exception():
            run.log("run_started", stages=names, versions=versions(), hardware=hardware.describe())
            with ray_session(num_cpus=spec.ray.num_cpus, address=spec.ray.address):
                for current in names:
                    _run_stage(load_stage(current)(spec), run, force=force)
    except BaseException as error:
        # Whatever raised (a stage, its configuration, the cluster, an interrupt, SIGTERM), the run
        # ends `failed` with a reason, never `running`.
        _record_failure(run, current, error)
        raise
    run.update_status(state="succeeded", stage=None)
    run.log("run_finished")
    run.push()
    return run


class Terminated(SystemExit):
    """SIGTERM (`ray job stop`, a pod's shutdown, `kill`) turned into an exception, so that the run
    records its end instead of vanishing with `running` in status.json."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextmanager
def _terminate_as_exception() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def failure_reason(error: BaseException) -> str:
    """One line for status.json. Errors about input carry locations and keys only (DataError,
    SpecError, InvalidRun), so their message is the reason; any other message may quote data and
    stays in the run's own log (`stage_failed`/`run_failed` events), its type stands in."""
    from meow.data.records import DataError
    from meow.pipeline.spec import SpecError

    if isinstance(error, DataError | SpecError) or type(error).__name__ == "InvalidRun":
        return (str(error).splitlines() or [type(error).__name__])[0]
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, Terminated):
        return "terminated (SIGTERM)"
    return f"{type(error).__name__} (the traceback is in log.jsonl)"


def _record_failure(run: RunDir, stage: str | None, error: BaseException) -> None:
    reason = failure_reason(error)
    stages = {}
    if stage is not None and run.status().get("stages", {}).get(stage, {}).get("state") in ("pending", "running"):
        stages[stage] = {"state": "failed", "error": type(error).__name__}
    try:
        run.update_status(state="failed", stage=stage, error=type(error).__name__, reason=reason, stages=stages)
        run.log("run_failed", stage=stage, error=type(error).__name__, trace=traceback.format_exc())
    except Exception:  # noqa: BLE001 - the original error is what the caller must see
        log.exception("could not record the failure in the run directory")


def _run_stage(stage: Stage, run: RunDir, force: bool) -> None:
    name = stage.name
    wanted = inputs_hash(stage, run)
    done = run.manifest(name)
    if done and done.get("inputs_hash") == wanted and not force:
        log.info("stage %s: already finished with the same inputs, skipped", name)
        run.update_status(stage=name, stages={name: {"state": "skipped"}})
        run.log("stage_skipped", stage=name)
        gauge("meow_pipeline_stage_progress_ratio", 1.0, "Fraction of a stage done", stage=name)
        return
    # Any earlier completion is stale from here on: its downstream must not trust it.
    run.clear_manifest(name)
    started = time.time()
    run.update_status(stage=name, stages={name: {"state": "running", "started": started, "error": None, "seconds": None}})
    run.log("stage_started", stage=name, inputs_hash=wanted)
    log.info("stage %s: running", name)
    ctx = StageContext(
        spec=stage.spec, run=run, dir=run.stage_dir(name), log=logging.getLogger(f"meow.{name}"), inputs_hash=wanted
    )
    try:
        summary = stage.run(ctx)
    except BaseException as error:
        seconds = round(time.time() - started, 2)
        # The error's type and the traceback's locations; messages may quote data, so they stay in the
        # local log only.
        run.update_status(state="failed", stages={name: {"state": "failed", "seconds": seconds, "error": type(error).__name__}})
        run.log("stage_failed", stage=name, seconds=seconds, error=type(error).__name__, trace=traceback.format_exc())
        raise
    seconds = round(time.time() - started, 2)
    manifest: dict[str, Any] = {
        "stage": name,
        "inputs_hash": wanted,
        "config": stage.config(),
        "completion": uuid.uuid4().hex,
        "started": started,
        "seconds": seconds,
        "versions": versions(),
        "summary": summary,
    }
    run.write_manifest(name, manifest)
    run.update_status(stages={name: {"state": "succeeded", "seconds": seconds}})
    run.log("stage_finished", stage=name, seconds=seconds)
    gauge("meow_pipeline_stage_progress_ratio", 1.0, "Fraction of a stage done", stage=name)
    gauge("meow_pipeline_stage_duration_seconds", seconds, "Wall time of the last run of a stage", stage=name)
    run.push(name)
    log.info("stage %s: finished in %.1f s", name, seconds)
