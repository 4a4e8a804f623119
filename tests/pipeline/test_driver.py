"""The driver's bookkeeping with small stand-in stages: skip, rerun on change, resume after failure."""

import json

import pytest

from meow.pipeline import driver
from meow.pipeline.rundir import RunDir
from meow.pipeline.spec import load_spec
from meow.pipeline.stage import Stage

CALLS: list[str] = []


class WritesFile(Stage):
    """Records each run and writes one artifact derived from its config and upstream artifact."""

    def config(self):
        return getattr(self.spec, self.name).model_dump()

    def run(self, ctx):
        CALLS.append(self.name)
        upstream = "".join((ctx.upstream(r) / "out.txt").read_text() for r in self.reads if r in self.spec.stages)
        (ctx.dir / "out.txt").write_text(upstream + f"{self.name};")
        return {"ok": True}


class Invert(WritesFile):
    name = "invert"


class Memo(WritesFile):
    name = "memo"
    reads = ("invert",)


class Select(WritesFile):
    name = "select"
    reads = ("memo",)
    fail_next = False

    def run(self, ctx):
        if Select.fail_next:
            Select.fail_next = False
            (ctx.dir / "partial.txt").write_text("half done")
            raise RuntimeError("killed")
        return super().run(ctx)


STAGES = {"invert": Invert, "memo": Memo, "select": Select}
SPEC = "stages: [invert, memo, select]\n"


@pytest.fixture(autouse=True)
def stand_in_stages(monkeypatch, ray_local):
    CALLS.clear()
    monkeypatch.setattr(driver, "load_stage", STAGES.__getitem__)


def test_first_run_runs_everything_and_writes_manifests(tmp_path):
    run = driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    assert CALLS == ["invert", "memo", "select"]
    assert (run.path / "select" / "out.txt").read_text() == "invert;memo;select;"
    for stage in STAGES:
        manifest = run.manifest(stage)
        assert manifest["summary"] == {"ok": True} and "torch" in manifest["versions"]
    assert run.status()["state"] == "succeeded"
    assert (run.path / "spec.yaml").read_text() == load_spec(SPEC).to_yaml()


def test_rerun_skips_finished_stages(tmp_path):
    driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    CALLS.clear()
    run = driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    assert CALLS == []
    assert {s["state"] for s in run.status()["stages"].values()} == {"skipped"}


def test_changed_config_recomputes_that_stage_and_everything_downstream(tmp_path, monkeypatch):
    driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    CALLS.clear()
    seen = {}

    class WatchesStatus(Memo):
        def run(self, ctx):
            seen.update(ctx.run.status()["stages"])
            return super().run(ctx)

    monkeypatch.setattr(driver, "load_stage", {**STAGES, "memo": WatchesStatus}.__getitem__)
    driver.run_pipeline(load_spec(SPEC + "memo:\n  stride: 7\n"), str(tmp_path / "run"))
    assert CALLS == ["memo", "select"]
    # While it reruns, the stage shows no duration from its previous run; a skipped stage keeps its own.
    assert seen["memo"]["state"] == "running" and "seconds" not in seen["memo"]
    assert seen["invert"]["state"] == "skipped" and seen["invert"]["seconds"] >= 0


def test_failed_stage_keeps_earlier_results_and_a_rerun_resumes(tmp_path):
    Select.fail_next = True
    with pytest.raises(RuntimeError, match="killed"):
        driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    run = RunDir(tmp_path / "run")
    assert run.manifest("invert") and run.manifest("memo") and run.manifest("select") is None
    assert (run.path / "select" / "partial.txt").exists(), "partial work stays for the stage to resume from"
    status = run.status()
    assert status["state"] == "failed" and status["stages"]["select"]["error"] == "RuntimeError"
    events = [json.loads(line)["event"] for line in (run.path / "log.jsonl").read_text().splitlines()]
    assert "stage_failed" in events
    CALLS.clear()
    driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    assert CALLS == ["select"]
    resumed = run.status()
    assert resumed["state"] == "succeeded"
    assert resumed["stages"]["select"]["state"] == "succeeded" and "error" not in resumed["stages"]["select"]


def test_run_directory_on_s3_is_pushed_and_resumed(tmp_path, s3_server, monkeypatch):
    import boto3

    monkeypatch.setenv("MEOW_HOME", str(tmp_path / "home"))
    boto3.client("s3").create_bucket(Bucket="runs")
    seen_while_running = {}

    class WatchesTheBucket(Select):
        def run(self, ctx):
            # What someone polling the bucket sees while this stage runs.
            body = boto3.client("s3").get_object(Bucket="runs", Key="team-a/r1/status.json")["Body"].read()
            seen_while_running.update(json.loads(body))
            return super().run(ctx)

    monkeypatch.setattr(driver, "load_stage", {**STAGES, "select": WatchesTheBucket}.__getitem__)
    driver.run_pipeline(load_spec(SPEC), "s3://runs/team-a/r1")
    assert seen_while_running["stage"] == "select" and seen_while_running["stages"]["select"]["state"] == "running"
    assert seen_while_running["stages"]["memo"]["state"] == "succeeded"
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="runs")["Contents"]}
    assert {"team-a/r1/select/out.txt", "team-a/r1/select/manifest.json", "team-a/r1/status.json"} <= keys
    # A fresh machine (empty staging) resumes from what the bucket holds.
    monkeypatch.setenv("MEOW_HOME", str(tmp_path / "other-home"))
    CALLS.clear()
    driver.run_pipeline(load_spec(SPEC), "s3://runs/team-a/r1")
    assert CALLS == []


def test_a_failing_configuration_or_stage_lookup_ends_the_run_failed_with_a_reason(tmp_path, monkeypatch):
    from meow.data import DataError

    class BadConfig(Memo):
        def config(self):
            raise DataError("forget.jsonl", "malformed JSON", line=3)

    monkeypatch.setattr(driver, "load_stage", {**STAGES, "memo": BadConfig}.__getitem__)
    with pytest.raises(DataError):
        driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    status = RunDir(tmp_path / "run").status()
    assert status["state"] == "failed" and status["stage"] == "memo" and status["error"] == "DataError"
    assert status["reason"] == "forget.jsonl, line 3: malformed JSON"
    assert status["stages"]["memo"]["state"] == "failed" and status["stages"]["select"]["state"] == "pending"

    def missing(name):
        raise ImportError("no module for this stage")

    monkeypatch.setattr(driver, "load_stage", missing)
    with pytest.raises(ImportError):
        driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"), only=["select"])
    status = RunDir(tmp_path / "run").status()
    assert status["state"] == "failed" and status["stages"]["select"]["state"] == "failed"
    # Other errors' messages may quote data: the type stands in, the traceback is in the run's log.
    assert status["reason"] == "ImportError (the traceback is in log.jsonl)"
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_failed" and "no module" in events[-1]["trace"]

    monkeypatch.setattr(driver, "load_stage", STAGES.__getitem__)
    driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    status = RunDir(tmp_path / "run").status()
    assert status["state"] == "succeeded" and "reason" not in status and "error" not in status


def test_a_run_that_cannot_start_its_cluster_ends_failed(tmp_path, monkeypatch):
    from contextlib import contextmanager

    @contextmanager
    def no_cluster(**kwargs):
        raise ConnectionError("cannot reach the Ray head")
        yield

    monkeypatch.setattr(driver, "ray_session", no_cluster)
    with pytest.raises(ConnectionError):
        driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"), only=["select"])
    status = RunDir(tmp_path / "run").status()
    assert status["state"] == "failed" and status["reason"].startswith("ConnectionError")
    assert status["stages"]["select"]["state"] == "pending"


def test_sigterm_during_a_stage_ends_the_run_failed(tmp_path, monkeypatch):
    import os
    import signal

    class Killed(Memo):
        def run(self, ctx):
            os.kill(os.getpid(), signal.SIGTERM)
            return super().run(ctx)

    monkeypatch.setattr(driver, "load_stage", {**STAGES, "memo": Killed}.__getitem__)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    status = RunDir(tmp_path / "run").status()
    assert status["state"] == "failed" and status["reason"] == "terminated (SIGTERM)"
    assert status["stages"]["memo"]["state"] == "failed" and status["stages"]["select"]["state"] == "pending"
    assert signal.getsignal(signal.SIGTERM) == previous


def test_a_stage_sees_its_inputs_hash_on_the_context(tmp_path, monkeypatch):
    # What names a training run's checkpoints: the same on a rerun with the same inputs.
    seen = {}

    class Sees(Invert):
        def run(self, ctx):
            seen["hash"] = ctx.inputs_hash
            return super().run(ctx)

    monkeypatch.setattr(driver, "load_stage", {**STAGES, "invert": Sees}.__getitem__)
    run = driver.run_pipeline(load_spec(SPEC), str(tmp_path / "run"))
    assert seen["hash"] == run.manifest("invert")["inputs_hash"] == driver.inputs_hash(Sees(load_spec(SPEC)), run)
