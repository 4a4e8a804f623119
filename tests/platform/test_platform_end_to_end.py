"""Two tenants run tiny-model MEOW jobs at once through the real API on a real local Ray; the control
plane crashes mid-job and comes back; a real Prometheus scrapes the control plane and Ray the whole
time. The scenario runs once per module; each test checks one property of what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from control_plane import ControlPlane, wait_for_state
from prometheus_server import Prometheus, dashboard_queries

from meow.cluster import local_ray_env
from meow.data.tofu import tofu_path
from meow.testing.servers import LOOPBACK, free_port, stop, wait_for_port
from meow.testing.tiny_model import build_tiny_llama

TENANTS = ("acme", "globex")
FACTS = 3


def spec(tiny: Path, forget: Path, full: bool) -> str:
    """acme's job runs every stage with metrics the dashboards read, globex's the first three."""
    hf = "engine: {name: hf}"
    stages = "[invert, memo, select, unlearn, evaluate]" if full else "[invert, memo, select]"
    return f"""name: tiny-e2e
model: {tiny}
forget: {{source: {forget}}}
stages: {stages}
invert: {{kind: free-form, generator: {tiny}, num_candidates: 2, max_attempts: 1, max_new_tokens: 24, actors: 1, {hf}}}
memo: {{max_new_tokens: 12, actors: 1, {hf}}}
select: {{k: 1}}
unlearn:
  train: {{workers: 1, epochs: 1, batch_size: 2, micro_batch_size: 2, max_length: 64, checkpoint_every: 0,
          precision: fp32}}
evaluate: {{oracle: {tiny}, max_rows: 2, max_length: 64, batch_size: 8, actors: 1, cache: false, {hf}}}
"""


def forget_records() -> list[dict]:
    rows = [json.loads(line) for line in tofu_path("forget01").read_text().splitlines() if line.strip()]
    return rows[:FACTS]


class Scenario:
    """What the module's tests look at: the control plane, clients, jobs, Prometheus and the window."""

    def __init__(self, plane: ControlPlane, prometheus: Prometheus):
        self.plane, self.prometheus = plane, prometheus
        self.clients: dict[str, httpx.Client] = {}
        self.jobs: dict[str, dict] = {}
        self.start = time.time()
        self.end = 0.0
        self.restarted_while: dict[str, str] = {}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, ray_cluster, start_plane):
    root = tmp_path_factory.mktemp("e2e")
    shared = root / "shared-models"
    tiny = build_tiny_llama(shared / "tiny")
    plane = start_plane()
    prometheus, probe_server = _monitoring(root, plane, ray_cluster.metrics_port)
    run = Scenario(plane, prometheus)
    try:
        artifacts = plane.data_dir / "artifacts"
        for tenant in TENANTS:
            run.clients[tenant], _ = plane.tenant(tenant, read_prefixes=[str(shared)])
            forget = artifacts / tenant / "data" / "forget.jsonl"
            forget.parent.mkdir(parents=True)
            forget.write_text("".join(json.dumps(r) + "\n" for r in forget_records()))

        def submit(tenant: str) -> None:
            forget = artifacts / tenant / "data" / "forget.jsonl"
            body = {"spec": spec(tiny, forget, full=tenant == "acme"), "request_id": f"{tenant}-1"}
            run.jobs[tenant] = run.clients[tenant].post("/v1/jobs", json=body).raise_for_status().json()

        threads = [threading.Thread(target=submit, args=(t,)) for t in TENANTS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for tenant in TENANTS:
            run.jobs[tenant] = wait_for_state(
                run.clients[tenant], run.jobs[tenant]["id"], states=("running",), timeout=180
            )
        # A crash, not a shutdown: nothing gets to clean up. The jobs keep running on Ray meanwhile.
        plane.kill()
        run.restarted_while = {t: run.jobs[t]["state"] for t in TENANTS}
        _emit_serve_metrics(ray_cluster)  # while the control plane is down
        plane.start()
        for tenant in TENANTS:
            run.jobs[tenant] = wait_for_state(run.clients[tenant], run.jobs[tenant]["id"], timeout=400)
        time.sleep(4)  # a few more scrapes after the last state change
        run.end = time.time()
        yield run
    finally:
        prometheus.stop()
        stop(probe_server)


def _monitoring(root: Path, plane: ControlPlane, ray_metrics_port: int) -> tuple[Prometheus, subprocess.Popen]:
    """Prometheus scraping the control plane (admin token), Ray's metrics port and a probe textfile."""
    probe_dir = root / "probe"
    probe_dir.mkdir()
    _write_probe_textfile(probe_dir / "metrics.prom")
    probe_port = free_port()
    probe_server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(probe_port), "--bind", LOOPBACK, "--directory", str(probe_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(probe_port, process=probe_server)
    token_file = root / "metrics-token"
    token_file.write_text(plane.admin_token)
    prometheus = Prometheus(
        root,
        [
            {
                "job_name": "meow-platform",
                "authorization": {"credentials_file": str(token_file)},
                "static_configs": [{"targets": [f"{LOOPBACK}:{plane.port}"]}],
            },
            {"job_name": "ray", "static_configs": [{"targets": [f"{LOOPBACK}:{ray_metrics_port}"]}]},
            {
                "job_name": "meow-probe",
                "metrics_path": "/metrics.prom",
                "static_configs": [{"targets": [f"{LOOPBACK}:{probe_port}"]}],
            },
        ],
    )
    return prometheus, probe_server


def _write_probe_textfile(path: Path) -> None:
    """The probe's own exporter, on a small made-up outcome (the probe's tests run real attacks)."""
    from meow.probe.export import write_metrics
    from meow.probe.report import Outcome, Verdict

    results = {
        "direct": {
            "original": Outcome(rows=[{}] * 4, aggregate={"leak_rate": 0.5}),
            "unlearned": Outcome(rows=[{}] * 4, aggregate={"leak_rate": 0.0}),
        }
    }
    verdicts = {
        "direct": Verdict("direct", "leak_rate", "", subject="unlearned", reference="original", direction="less")
    }
    write_metrics(path, results, verdicts)


def _emit_serve_metrics(cluster) -> None:
    env = {**os.environ, **local_ray_env(), "RAY_ADDRESS": cluster.gcs_address}
    script = Path(__file__).with_name("emit_serve_metrics.py")
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=180)


def test_both_tenants_jobs_succeed_across_a_control_plane_crash(scenario):
    assert set(scenario.restarted_while.values()) <= {"submitted", "running"}, "the crash came mid-job"
    for tenant in TENANTS:
        job = scenario.jobs[tenant]
        assert job["state"] == "succeeded", (tenant, job["reason"])
        assert job["created_at"] <= job["submitted_at"] <= job["started_at"] <= job["finished_at"]
        events = scenario.clients[tenant].get(f"/v1/jobs/{job['id']}/events").json()
        assert [e["state"] for e in events] == ["queued", "submitted", "running", "succeeded"]
        assert job["progress"]["state"] == "succeeded"
        assert {s["state"] for s in job["progress"]["stages"].values()} == {"succeeded"}


def test_each_tenant_sees_only_its_own_job(scenario):
    for tenant, other in (TENANTS, TENANTS[::-1]):
        mine, theirs = scenario.jobs[tenant]["id"], scenario.jobs[other]["id"]
        client = scenario.clients[tenant]
        assert [j["id"] for j in client.get("/v1/jobs").json()["items"]] == [mine]
        for path in ("", "/logs", "/events", "/artifacts"):
            assert client.get(f"/v1/jobs/{theirs}{path}").status_code == 404
        assert client.post(f"/v1/jobs/{theirs}/cancel").status_code == 404
    again = scenario.clients["acme"].post("/v1/jobs", json={"spec": "{}", "request_id": "acme-1"})
    assert again.status_code == 409, "the request id is taken, by a different spec"


def test_outputs_land_in_the_tenants_own_prefix(scenario):
    artifacts = scenario.plane.data_dir / "artifacts"
    for tenant in TENANTS:
        job = scenario.jobs[tenant]
        summary = scenario.clients[tenant].get(f"/v1/jobs/{job['id']}/artifacts").json()
        assert summary["run_dir"] == str(artifacts / tenant / "runs" / job["id"])
        selected = Path(summary["run_dir"]) / "select" / "selected.jsonl"
        assert len(selected.read_text().splitlines()) == FACTS


def test_the_unlearned_model_and_its_metrics_are_reachable(scenario):
    client, job = scenario.clients["acme"], scenario.jobs["acme"]
    summary = client.get(f"/v1/jobs/{job['id']}/artifacts").json()
    assert summary["model_uri"] == f"{summary['run_dir']}/unlearn/model" and summary["metrics"] is True
    assert (Path(summary["model_uri"]) / "config.json").is_file()
    metrics = client.get(f"/v1/jobs/{job['id']}/artifacts/metrics.json").json()
    assert set(metrics["methods"]) == {"meow"} and "forget_quality" in metrics["methods"]["meow"]
    globex = scenario.clients["globex"].get(f"/v1/jobs/{scenario.jobs['globex']['id']}/artifacts").json()
    assert (globex["model_uri"], globex["metrics"]) == (None, False), "globex's job stopped after select"


def test_logs_come_from_the_driver_and_end(scenario):
    for tenant in TENANTS:
        client, job = scenario.clients[tenant], scenario.jobs[tenant]
        logs = client.get(f"/v1/jobs/{job['id']}/logs").json()
        assert "stage select: finished" in logs["text"] and logs["final"] is True
        rest = client.get(f"/v1/jobs/{job['id']}/logs", params={"offset": logs["next_offset"]}).json()
        assert rest == {"text": "", "offset": logs["next_offset"], "next_offset": logs["next_offset"], "final": True}


def test_forget_set_text_never_reaches_control_plane_logs_metrics_or_errors(scenario):
    plane = scenario.plane
    with plane.admin() as admin:
        seen = plane.log() + admin.get("/metrics").text
    client = scenario.clients["acme"]
    seen += client.post("/v1/jobs", json={"spec": "forget: {source: /etc/passwd}\n"}).text
    seen += client.post("/v1/jobs", json={"spec": "forget: {question_field: [7]}\n"}).text
    for job in scenario.jobs.values():
        seen += json.dumps(job)
    for record in forget_records():
        for text in (record["question"], record["answer"]):
            assert text not in seen


def test_the_driver_logs_no_forget_set_text(scenario):
    for tenant in TENANTS:
        logs = scenario.clients[tenant].get(f"/v1/jobs/{scenario.jobs[tenant]['id']}/logs").json()["text"]
        for record in forget_records():
            assert record["question"] not in logs and record["answer"] not in logs


def test_prometheus_scraped_every_target(scenario):
    health = {t["labels"]["job"]: t["health"] for t in scenario.prometheus.targets()}
    assert health == {"meow-platform": "up", "ray": "up", "meow-probe": "up"}


QUERIES = dashboard_queries()


@pytest.mark.parametrize("dashboard, title, expr", QUERIES, ids=[f"{d}:{t}:{i}" for i, (d, t, _) in enumerate(QUERIES)])
def test_every_dashboard_query_returns_series(scenario, dashboard, title, expr):
    result = scenario.prometheus.query_range(expr, scenario.start, scenario.end)
    assert result, f"{dashboard} / {title}: no series for {expr}"
