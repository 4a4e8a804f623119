"""The job API over real HTTP: auth and scopes, tenant isolation, spec policy, quotas, idempotent
submits, pagination, size and rate limits. Tenants here get `max_concurrent_jobs: 0`, so their jobs
stay queued and nothing reaches Ray: these tests are about the API; test_platform_end_to_end.py
runs jobs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

HELD = {"max_concurrent_jobs": 0, "max_queued_jobs": 20}
SPEC = "stages: [invert]\nunlearn: {train: {workers: 1}}\nmemo: {actors: 1}\n"


@pytest.fixture(scope="module")
def acme(plane):
    client, _ = plane.tenant("acme", quota=HELD)
    return client


@pytest.fixture(scope="module")
def globex(plane):
    client, _ = plane.tenant("globex", quota=HELD)
    return client


def submit(client: httpx.Client, spec: str = SPEC, **fields) -> httpx.Response:
    return client.post("/v1/jobs", json={"spec": spec, **fields})


def test_openapi_is_published_and_documents_bearer_auth(plane):
    spec = httpx.get(f"{plane.url}/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}/logs", "/v1/tenants/{name}/tokens"} <= set(spec["paths"])
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in spec["components"]["securitySchemes"].values())


def test_health_is_open_everything_else_needs_a_token(plane):
    assert httpx.get(f"{plane.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{plane.url}/readyz").status_code == 200
    for path in ("/v1/jobs", "/v1/tenants", "/metrics", "/v1/whoami"):
        answer = httpx.get(f"{plane.url}{path}")
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer", path


def test_forged_and_revoked_tokens_get_401(plane):
    client, token = plane.tenant("initech", quota=HELD)
    assert client.get("/v1/jobs").status_code == 200
    token_id = token.split("_")[1]
    for forged in (
        f"meow_{token_id}_{'x' * 43}",
        "meow_000000000000_" + "y" * 43,
        token[:-1],
        "not-a-token",
        plane.admin_token + "x",
    ):
        assert plane.client(forged).get("/v1/jobs").status_code == 401, forged
    with plane.admin() as admin:
        spare = admin.post("/v1/tenants/initech/tokens", json={}).json()
        assert admin.delete(f"/v1/tenants/initech/tokens/{token_id}").json()["revoked_at"]
        listed = admin.get("/v1/tenants/initech/tokens").json()
    assert client.get("/v1/jobs").status_code == 401
    assert plane.client(spare["token"]).get("/v1/jobs").status_code == 200
    assert all("token" not in t and "secret" not in str(t) for t in listed), "secrets are shown once, never listed"


def test_admin_and_tenant_scopes_are_separate(plane, acme):
    assert acme.get("/v1/tenants").status_code == 403
    assert acme.post("/v1/tenants", json={"name": "sneaky"}).status_code == 403
    assert acme.get("/metrics").status_code == 403
    with plane.admin() as admin:
        answer = admin.get("/v1/jobs")
        assert answer.status_code == 403 and "tenant token" in answer.json()["detail"]["message"]
        assert admin.get("/metrics").status_code == 200
        assert admin.get("/v1/whoami").json() == {"scope": "admin", "tenant": None}
    assert acme.get("/v1/whoami").json() == {"scope": "tenant", "tenant": "acme"}


def test_a_disabled_tenant_is_locked_out_until_enabled(plane):
    client, _ = plane.tenant("hooli", quota=HELD)
    with plane.admin() as admin:
        assert admin.patch("/v1/tenants/hooli", json={"disabled": True}).json()["disabled"] is True
        assert client.get("/v1/jobs").status_code == 403
        admin.patch("/v1/tenants/hooli", json={"disabled": False}).raise_for_status()
    assert client.get("/v1/jobs").status_code == 200


def test_another_tenants_job_is_indistinguishable_from_a_missing_one(acme, globex):
    job = submit(acme).raise_for_status().json()
    assert job["state"] == "queued" and job["tenant"] == "acme"
    for method, path in [
        ("GET", ""),
        ("POST", "/cancel"),
        ("GET", "/events"),
        ("GET", "/logs"),
        ("GET", "/artifacts"),
        ("GET", "/artifacts/metrics.json"),
        ("GET", "/artifacts/report/report.md"),
    ]:
        theirs = globex.request(method, f"/v1/jobs/{job['id']}{path}")
        missing = globex.request(method, f"/v1/jobs/0000000000000000{path}")
        assert theirs.status_code == missing.status_code == 404, path
        assert theirs.json()["detail"]["code"] == missing.json()["detail"]["code"] == "not_found"
    assert job["id"] not in [j["id"] for j in globex.get("/v1/jobs").json()["items"]]
    assert acme.get(f"/v1/jobs/{job['id']}").json()["state"] == "queued", "globex's cancel did nothing"


def test_a_duplicate_request_id_returns_the_same_job(acme, globex):
    first = submit(acme, request_id="nightly-2026-11-22")
    again = submit(acme, request_id="nightly-2026-11-22")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    conflict = submit(acme, SPEC + "seed: 7\n", request_id="nightly-2026-11-22")
    assert conflict.status_code == 409 and conflict.json()["detail"]["code"] == "request_id_reused"
    other = submit(globex, request_id="nightly-2026-11-22")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"], "request ids are per tenant"


def test_specs_reaching_another_prefix_or_unregistered_handlers_are_rejected(plane):
    client, _ = plane.tenant("umbrella", quota=HELD)
    artifacts = plane.data_dir / "artifacts"
    for spec, code in [
        (f"model: {artifacts}/acme/runs/x/unlearn/model\n", "forbidden_location"),
        (f"forget: {{source: {artifacts}/umbrella/../acme/forget.jsonl}}\n", "forbidden_location"),
        ("forget: {source: /etc/passwd}\n", "forbidden_location"),
        ("stages: [invert]\nunlearn:\n  method: evil.module:Trainer\n", "invalid_spec"),
        ("ray: {address: 'http://127.0.0.1:8265'}\n", "forbidden_key"),
    ]:
        answer = submit(client, spec)
        assert answer.status_code == 422 and answer.json()["detail"]["code"] == code, spec
    message = submit(client, "stages: [invert]\nunlearn:\n  method: evil.module:Trainer\n").json()["detail"]["message"]
    assert "line" in message and "unlearn.method" in message and "unknown unlearning method" in message
    (artifacts / "umbrella" / "models" / "tiny").mkdir(parents=True, exist_ok=True)
    (artifacts / "umbrella" / "models" / "tiny" / "config.json").write_text("{}")
    (artifacts / "umbrella" / "forget.jsonl").write_text('{"question": "Q?", "answer": "A."}\n')
    own = submit(
        client, f"model: {artifacts}/umbrella/models/tiny\nforget: {{source: {artifacts}/umbrella/forget.jsonl}}\n"
    )
    assert own.status_code == 201
    assert [j["id"] for j in client.get("/v1/jobs").json()["items"]] == [own.json()["id"]]


def test_a_bad_forget_set_or_model_is_refused_at_submit_with_one_line(plane):
    client, _ = plane.tenant("soylent", quota=HELD)
    data = plane.data_dir / "artifacts" / "soylent"
    data.mkdir(parents=True, exist_ok=True)
    (data / "forget.jsonl").write_text('{"question": "Q?", "answer": "A."}\n{"question": "Q2?"}\n')
    for spec, message in [
        (f"forget: {{source: {data}/forget.jsonl}}\n", f"{data}/forget.jsonl, line 2: missing field 'answer'"),
        (f"forget: {{source: {data}/none.jsonl}}\n", f"{data}/none.jsonl: file not found (named by forget.source"),
        (f"model: {data}/model\n", f"spec, line 1, key model: '{data}/model' is neither an embedded model"),
    ]:
        answer = submit(client, spec)
        assert answer.status_code == 422 and answer.json()["detail"]["code"] == "invalid_input", spec
        assert answer.json()["detail"]["message"].startswith(message) and "\n" not in answer.json()["detail"]["message"]
    assert client.get("/v1/jobs").json()["items"] == []


def test_over_quota_answers(plane):
    queueing, _ = plane.tenant(
        "queueing", quota={"max_concurrent_jobs": 0, "max_queued_jobs": 2, "max_workers_per_job": 2}
    )
    too_big = submit(queueing, "unlearn: {train: {workers: 3}}\n")
    assert too_big.status_code == 422
    assert too_big.json()["detail"] | {"message": ""} == {
        "code": "quota_exceeded",
        "message": "",
        "quota": "max_workers_per_job",
        "limit": 2,
        "requested": 3,
    }
    assert [submit(queueing).json()["state"] for _ in range(2)] == ["queued", "queued"]
    full = submit(queueing)
    assert full.status_code == 429 and full.json()["detail"]["quota"] == "max_queued_jobs"
    assert int(full.headers["Retry-After"]) > 0
    rejecting, _ = plane.tenant("rejecting", quota={"max_concurrent_jobs": 0, "over_quota": "reject"})
    refused = submit(rejecting)
    assert refused.status_code == 429 and refused.json()["detail"]["quota"] == "max_concurrent_jobs"


def test_cancelling_a_queued_job(acme):
    job = submit(acme).json()
    cancelled = acme.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert acme.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409
    events = acme.get(f"/v1/jobs/{job['id']}/events").json()
    assert [(e["state"], e["message"]) for e in events] == [
        ("queued", "accepted"),
        ("cancelled", "cancelled by the tenant"),
    ]


def test_pages_walk_every_job_once(plane):
    client, _ = plane.tenant("paged", quota=HELD)
    made = [submit(client).json()["id"] for _ in range(5)]
    seen, token = [], None
    while True:
        page = client.get("/v1/jobs", params={"limit": 2, **({"page_token": token} if token else {})}).json()
        seen += [j["id"] for j in page["items"]]
        if not (token := page["next_page_token"]):
            break
    assert seen == made[::-1]
    assert client.get("/v1/jobs", params={"state": "running"}).json()["items"] == []
    assert client.get("/v1/jobs", params={"page_token": "garbage"}).status_code == 400


def test_request_bodies_over_the_limit_are_refused(acme):
    huge = "# " + "x" * (1 << 20) + "\n" + SPEC
    assert submit(acme, huge).status_code == 413

    def chunks():  # no Content-Length: the limit holds for streamed bodies too
        yield b'{"spec": "'
        for _ in range(40):
            yield b"#" * 65536
        yield b'"}'

    answer = acme.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413


def test_requests_beyond_the_tenants_rate_are_refused(plane):
    client, _ = plane.tenant("chatty", quota={**HELD, "requests_per_minute": 5})
    codes = [client.get("/v1/jobs").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    assert int(client.get("/v1/jobs").headers["Retry-After"]) >= 1


def test_validation_errors_do_not_echo_the_request(acme):
    text = "Basil Mahfouz Al-Kuwaiti was born in Kuwait City"
    answer = acme.post("/v1/jobs", json={"spec": 5, "note": text})
    assert answer.status_code == 422 and text not in answer.text
    answer = submit(acme, f"forget: {{question_field: [{text!r}]}}\n")
    assert answer.status_code == 422 and text not in answer.text


def test_control_plane_metrics_label_tenants_and_route_templates(plane, acme):
    job = submit(acme).json()
    acme.get(f"/v1/jobs/{job['id']}")
    with plane.admin() as admin:
        text = admin.get("/metrics").text
    assert 'meow_platform_jobs_submitted_total{tenant="acme"}' in text
    assert 'meow_platform_queue_length{tenant="acme"}' in text
    assert 'meow_platform_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="200"}' in text
    assert 'reason="max_queued_jobs",tenant="queueing"' in text
    assert job["id"] not in text, "job ids are not labels"


def test_artifacts_are_served_from_the_run_directory_only(acme):
    job = submit(acme).json()
    run_dir = Path(job["run_dir"])
    assert acme.get(f"/v1/jobs/{job['id']}/artifacts").json() == {
        "run_dir": str(run_dir),
        "model_uri": None,
        "metrics": False,
        "report": [],
    }
    # What a finished run leaves behind (written here: these jobs are held in the queue).
    (run_dir / "unlearn" / "model").mkdir(parents=True)
    (run_dir / "unlearn" / "model" / "config.json").write_text("{}")
    (run_dir / "evaluate").mkdir()
    (run_dir / "evaluate" / "metrics.json").write_text('{"methods": {"meow": {"forget_quality": 0.5}}}')
    (run_dir / "report").mkdir()
    (run_dir / "report" / "report.md").write_text("# report\n")
    (run_dir / "report" / "plots").mkdir()
    (run_dir / "spec.yaml").write_text("secret: not an artifact\n")
    summary = acme.get(f"/v1/jobs/{job['id']}/artifacts").json()
    assert summary == {
        "run_dir": str(run_dir),
        "model_uri": f"{run_dir}/unlearn/model",
        "metrics": True,
        "report": ["report.md"],
    }
    assert acme.get(f"/v1/jobs/{job['id']}/artifacts/metrics.json").json()["methods"]["meow"]["forget_quality"] == 0.5
    report = acme.get(f"/v1/jobs/{job['id']}/artifacts/report/report.md")
    assert report.text == "# report\n" and report.headers["content-type"].startswith("text/markdown")
    for name in ("..%2Fspec.yaml", "plots", "%2E%2E%2Fspec.yaml", "missing.png"):
        assert acme.get(f"/v1/jobs/{job['id']}/artifacts/report/{name}").status_code == 404, name


def test_tenant_settings_are_validated(plane):
    with plane.admin() as admin:
        for body in (
            {"name": "Bad_Name"},
            {"name": "x" * 41},
            {"name": "ok-name", "read_prefixes": ["relative/models"]},
            {"name": "ok-name", "read_prefixes": ["s3://bucket/../other"]},
            {"name": "ok-name", "namespace": "kube-system; rm"},
            {"name": "ok-name", "quota": {"max_concurrent_jobs": -1}},
            {"name": "ok-name", "unknown": 1},
        ):
            assert admin.post("/v1/tenants", json=body).status_code == 422, body
        assert admin.post("/v1/tenants", json={"name": "acme"}).status_code == 409
        assert admin.get("/v1/tenants/nobody").status_code == 404
