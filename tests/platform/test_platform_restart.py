"""Restarts and crashes lose no work: a control plane with its own (embedded) Ray head is killed with
SIGKILL and, separately, stopped with SIGTERM (a rollout) while a tiny job runs; each time it comes
back on the same store, re-attaches to the same head and the job finishes, recorded as succeeded.
A job whose driver is stopped or killed ends with a final state in its status.json too; a head that
died is replaced, and only then are its jobs failed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from control_plane import ControlPlane, wait_for_state

from meow.data.tofu import tofu_path
from meow.testing.tiny_model import build_tiny_llama
from meow_platform.localray import HEAD_FILE, LocalRayCluster, state_dir

FACTS = 3


def spec(tiny: Path, forget: Path) -> str:
    hf = "engine: {name: hf}"
    return f"""name: tiny-restart
model: {tiny}
forget: {{source: {forget}}}
stages: [invert, memo, select]
invert: {{generator: {tiny}, num_candidates: 2, max_attempts: 1, max_new_tokens: 24, actors: 1, {hf}}}
memo: {{max_new_tokens: 12, actors: 1, {hf}}}
select: {{k: 1}}
"""


class Setup:
    def __init__(self, plane: ControlPlane, tiny: Path, forget: Path):
        self.plane, self.tiny, self.forget = plane, tiny, forget
        self.client, _ = plane.tenant("acme", read_prefixes=[str(tiny.parent)])

    def head(self) -> dict:
        return json.loads((state_dir(self.plane.data_dir) / HEAD_FILE).read_text())

    def submit(self, request_id: str) -> dict:
        body = {"spec": spec(self.tiny, self.forget), "request_id": request_id}
        return self.client.post("/v1/jobs", json=body).raise_for_status().json()

    def run_status(self, job: dict) -> dict:
        path = self.plane.data_dir / "artifacts" / "acme" / "runs" / job["id"] / "status.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def wait_for_stage(self, job: dict, timeout: float = 180) -> dict:
        """Until a stage of the job's run is running (the driver is mid-job, not starting up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.run_status(job)
            if any(s.get("state") == "running" for s in status.get("stages", {}).values()):
                return status
            time.sleep(0.3)
        raise TimeoutError(f"job {job['id']}: no stage running after {timeout} s")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("restart")
    tiny = build_tiny_llama(root / "shared-models" / "tiny")
    # No Ray address: the control plane starts (then re-attaches to) a head of its own.
    plane = ControlPlane(root / "plane", None, ray__num_cpus="2")
    plane.data_dir.mkdir()
    try:
        plane.start(timeout=240)
        forget = plane.data_dir / "artifacts" / "acme" / "data" / "forget.jsonl"
        forget.parent.mkdir(parents=True)
        rows = [json.loads(line) for line in tofu_path("forget01").read_text().splitlines() if line.strip()]
        forget.write_text("".join(json.dumps(r) + "\n" for r in rows[:FACTS]))
        yield Setup(plane, tiny, forget)
    finally:
        plane.stop()
        head = LocalRayCluster.attach(state_dir(plane.data_dir))
        if head is not None:
            head.stop()


def test_a_job_survives_sigkill_and_sigterm_of_the_control_plane(setup):
    """SIGKILL mid-job: the restarted control plane re-attaches and follows the job on. SIGTERM
    mid-job (a rollout): the job finishes while the control plane is down, and the restarted one
    records it succeeded."""
    plane, head = setup.plane, setup.head()
    job = setup.submit("survivor")
    setup.wait_for_stage(job)
    wait_for_state(setup.client, job["id"], states=("running",), timeout=120)
    plane.kill()
    assert psutil.pid_exists(head["pid"]), "the Ray head went down with the control plane"
    plane.start()
    assert setup.head() == head, "the restarted control plane re-attached to the same head"
    assert wait_for_state(setup.client, job["id"], states=("running",), timeout=30)["state"] == "running"

    setup.wait_for_stage(job)
    plane.stop()  # SIGTERM
    assert psutil.pid_exists(head["pid"]), "the Ray head went down with the control plane"
    assert setup.run_status(job)["state"] == "running", "SIGTERM came mid-job"
    deadline = time.monotonic() + 180
    while setup.run_status(job).get("state") != "succeeded":
        assert time.monotonic() < deadline, "the job did not finish while the control plane was down"
        time.sleep(0.5)
    plane.start()
    assert setup.head() == head
    job = wait_for_state(setup.client, job["id"], timeout=120)
    assert job["state"] == "succeeded", job["reason"]
    events = setup.client.get(f"/v1/jobs/{job['id']}/events").json()
    assert [e["state"] for e in events] == ["queued", "submitted", "running", "succeeded"]
    assert "the Ray cluster has no such job" not in plane.log()
    assert plane.log().count("attached to the Ray head") == 2


def test_a_stopped_or_killed_driver_ends_its_status_json(setup):
    """Cancel: Ray's stop sends SIGTERM to the driver, which records the run failed before it exits.
    SIGKILL gives the driver no chance: the scheduler records the end from Ray's verdict."""
    cancelled, killed = setup.submit("cancelled"), setup.submit("killed")
    for job in (cancelled, killed):
        setup.wait_for_stage(job)
    setup.client.post(f"/v1/jobs/{cancelled['id']}/cancel").raise_for_status()
    run_dir = str(setup.plane.data_dir / "artifacts" / "acme" / "runs" / killed["id"])
    drivers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "meow_platform.jobrun" in " ".join(p.info["cmdline"] or []) and run_dir in p.info["cmdline"]
    ]
    assert len(drivers) == 1
    drivers[0].kill()

    cancelled = wait_for_state(setup.client, cancelled["id"], timeout=120)
    assert cancelled["state"] == "cancelled", cancelled["reason"]
    status = setup.run_status(cancelled)
    assert (status["state"], status["reason"]) == ("failed", "terminated by SIGTERM"), status
    assert "running" not in {s["state"] for s in status["stages"].values()}

    killed = wait_for_state(setup.client, killed["id"], timeout=120)
    assert killed["state"] == "failed"
    status = setup.run_status(killed)
    assert (status["state"], status["error"], status["reason"]) == ("failed", "DriverLost", killed["reason"]), status
    assert "running" not in {s["state"] for s in status["stages"].values()}


def test_a_head_that_died_is_replaced_and_its_jobs_fail_with_a_reason(setup):
    """Last in the module: the head is gone for good (a reboot, an OOM kill of its GCS). The control
    plane starts a new one, and only then fails the job the old one ran, as missing."""
    head = setup.head()
    job = setup.submit("orphaned")
    setup.wait_for_stage(job)
    os.killpg(head["pid"], signal.SIGKILL)
    # Starting a head takes ~30 s on 2 idle cores, minutes on loaded ones (`ray start` is retried).
    job = wait_for_state(setup.client, job["id"], timeout=600)
    assert (job["state"], job["reason"]) == ("failed", "the Ray cluster has no such job")
    assert setup.head()["pid"] != head["pid"] and psutil.pid_exists(setup.head()["pid"])
    assert setup.run_status(job)["state"] == "failed"
    assert "the Ray head (pid %s) is gone; starting a new one" % head["pid"] in setup.plane.log()
