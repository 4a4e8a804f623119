"""Tenancy and API hardening over real HTTP (issue 22): a tenant cannot read another tenant's or the
platform's files through any location field, hostile specs get a 4xx (never a 500), the per-job
quota counts every stage's actors and their memory, the store is owner-only and the database password is never
printed. Tenants get `max_concurrent_jobs: 0`: nothing here reaches Ray."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from control_plane import ControlPlane

HELD = {"max_concurrent_jobs": 0, "max_queued_jobs": 50}
KEYS = ["model", "forget.source", "invert.generator", "evaluate.oracle", "unlearn.retain"]


def spec_with(key: str, location: str) -> dict:
    section, _, field = key.rpartition(".")
    return {section: {field: location}} if section else {field: location}


@pytest.fixture(scope="module")
def tenants(plane):
    """alpha, whose forget set lies in its own prefix, and bravo, who wants to read it."""
    alpha, _ = plane.tenant("alpha", quota=HELD)
    bravo, _ = plane.tenant("bravo", quota=HELD)
    forget = plane.data_dir / "artifacts" / "alpha" / "data" / "forget.jsonl"
    forget.parent.mkdir(parents=True)
    forget.write_text(json.dumps({"question": "Who is alpha's author?", "answer": "A secret."}) + "\n")
    return alpha, bravo


@pytest.mark.parametrize("key", KEYS)
def test_no_location_field_reaches_another_tenant_or_the_platform(plane, tenants, key):
    _, bravo = tenants
    root, data = plane.data_dir / "artifacts", plane.data_dir
    for location in (
        f"{root}/bravo/../alpha/data/forget.jsonl::memory://x.jsonl",  # 201 before: the report had alpha's records
        f"{root}/bravo/x.jsonl::{root}/alpha/data/forget.jsonl",
        f"{root}/bravo/../../platform.db::memory://x",
        f"{data}/platform.db",
        f"{data}/control-plane.log",
        f"{root}/alpha/data/forget.jsonl",
        f"file://{root}/alpha/data/forget.jsonl",
        f"memory://{root}/bravo/x.jsonl",
        "http://127.0.0.1:8700/v1/jobs",
    ):
        answer = bravo.post("/v1/jobs", json={"spec": spec_with(key, location)})
        assert answer.status_code == 422, (location, answer.text)
        assert answer.json()["detail"]["code"] == "forbidden_location", location
        assert f"key {key}" in answer.json()["detail"]["message"]
    assert bravo.get("/v1/jobs").json()["items"] == [], "nothing was queued"


def test_own_locations_are_still_accepted(plane, tenants):
    _, bravo = tenants
    forget = plane.data_dir / "artifacts" / "bravo" / "data" / "forget.jsonl"
    forget.parent.mkdir(parents=True, exist_ok=True)
    forget.write_text(json.dumps({"question": "Who is bravo's author?", "answer": "Bravo's."}) + "\n")
    spec = {"forget": {"source": str(forget)}, "stages": ["invert"]}
    answer = bravo.post("/v1/jobs", json={"spec": spec})
    assert answer.status_code == 201, answer.text


def _nested(depth: int) -> dict:
    spec: dict = {}
    level = spec
    for _ in range(depth):
        level["unlearn"] = {}
        level = level["unlearn"]
    return spec


@pytest.mark.parametrize(
    "spec, status, code",
    [
        (_nested(400), 422, "invalid_spec"),  # yaml.safe_dump recursed: 500
        ("[" * 3000, 422, "invalid_spec"),  # the YAML composer recursed: 500
        ({"forget": {"source": "/srv/acme/\x00forget.jsonl"}}, 422, "forbidden_location"),  # realpath: 500
        ('forget: {source: "/srv/acme/\\0forget.jsonl"}\n', 422, "forbidden_location"),
        ({"forget": {"source": "/srv/acme/\ud800.jsonl"}}, 422, "forbidden_location"),  # UnicodeEncodeError
        ("seed: 2026-13-45\n", 422, "invalid_spec"),
        ("stages: [evaluate]\nevaluate: {cpus_per_actor: .inf}\n", 422, "invalid_spec"),  # 500: inf in JSON
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
            422,
            "invalid_spec",
        ),
        ("# " + "x" * (70 << 10) + "\nseed: 1\n", 413, "spec_too_large"),  # under max_request_bytes
        ({"name": "meow-run", "unlearn": {"method_args": {"pad": "x" * (70 << 10)}}}, 413, "spec_too_large"),
    ],
)
def test_hostile_specs_get_a_4xx_not_a_500(plane, tenants, spec, status, code):
    _, bravo = tenants
    # json.dumps escapes a lone surrogate (`\ud800`) as JSON allows; httpx's `json=` cannot encode it.
    body = json.dumps({"spec": spec})
    answer = bravo.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()["detail"]["code"]) == (status, code)
    assert bravo.get("/v1/jobs").status_code == 200


def test_the_per_job_quota_counts_every_stages_actors(plane):
    client, _ = plane.tenant("sized", quota={**HELD, "max_cpus_per_job": 8, "max_gpus_per_job": 0})
    for spec, quota, requested, stage in (
        ("stages: [evaluate]\nevaluate: {oracle: null, actors: 100, cpus_per_actor: 8}\n", "max_cpus_per_job", 800, "evaluate"),
        ("stages: [evaluate]\nevaluate: {actors: 1, gpus_per_actor: 1}\n", "max_gpus_per_job", 1, "evaluate"),
        ("stages: [invert]\ninvert: {actors: 2, gpus_per_actor: 0.5}\n", "max_gpus_per_job", 1, "invert"),
        ("stages: [memo]\nmemo: {actors: 9}\n", "max_cpus_per_job", 9, "memo"),
    ):
        answer = client.post("/v1/jobs", json={"spec": spec})
        assert answer.status_code == 422, spec
        detail = answer.json()["detail"]
        assert (detail["code"], detail["quota"], detail["requested"]) == ("quota_exceeded", quota, requested), spec
        assert f"stage {stage}" in detail["message"]
    fits = client.post("/v1/jobs", json={"spec": "stages: [evaluate]\nevaluate: {actors: 2, cpus_per_actor: 4}\n"})
    assert fits.status_code == 201


def test_the_per_job_quota_counts_memory(plane):
    # Workers and engine actors reserve memory in the shared Ray cluster; a job asking more than its
    # tenant's limit in one stage is refused before it reaches Ray.
    client, _ = plane.tenant("memory", quota={**HELD, "max_memory_per_job": "8Gi"})
    for spec, requested, stage in (
        ("stages: [prepare]\nprepare: {train: {workers: 2, memory_per_worker: 6GiB}}\n", 12 << 30, "prepare"),
        ("stages: [evaluate]\nevaluate: {actors: 3, engine: {memory_per_actor: 3GiB}}\n", 9 << 30, "evaluate"),
    ):
        answer = client.post("/v1/jobs", json={"spec": spec})
        assert answer.status_code == 422, spec
        detail = answer.json()["detail"]
        assert (detail["code"], detail["quota"], detail["limit"], detail["requested"]) == (
            "quota_exceeded", "max_memory_per_job", 8 << 30, requested
        ), spec
        assert f"quota max_memory_per_job is 8.0GiB, stage {stage} of this submission needs" in detail["message"]
    fits = client.post("/v1/jobs", json={"spec": "stages: [evaluate]\nevaluate: {actors: 2, engine: {memory_per_actor: 4GiB}}\n"})
    assert fits.status_code == 201, fits.text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_store_is_owner_only_even_where_it_was_not(tmp_path_factory, ray_cluster):
    data = tmp_path_factory.mktemp("store")
    data.chmod(0o755)
    plane = ControlPlane(data, ray_cluster.dashboard_url)
    # What an earlier version left: a readable store.
    (data / "platform.db").touch(mode=0o644)
    (data / "platform.db").chmod(0o644)
    plane.start()
    try:
        plane.tenant("files", quota=HELD)  # a write: the WAL and shared-memory files exist now
        assert _mode(data) == 0o700
        for name in ("platform.db", "platform.db-wal", "platform.db-shm"):
            assert _mode(data / name) == 0o600, name
    finally:
        plane.stop()


def test_a_generated_admin_token_is_owner_only(tmp_path):
    from meow_platform.api.app import admin_token
    from meow_platform.settings import Settings

    token = admin_token(Settings(data_dir=tmp_path / "platform"))
    assert len(token) > 30 and _mode(tmp_path / "platform" / "admin-token") == 0o600


def test_the_database_password_is_never_printed(tmp_path):
    password = "Sup3r-S3cret-pw"
    env = {
        **os.environ,
        "MEOW_PLATFORM_DATA_DIR": str(tmp_path),
        "MEOW_PLATFORM_ADMIN_TOKEN": "x" * 32,
        # Nothing listens on port 1: the control plane fails to reach its store and says so.
        "MEOW_PLATFORM_DATABASE_URL": f"postgresql+psycopg://meow:{password}@127.0.0.1:1/meow",
    }
    done = subprocess.run(
        [sys.executable, "-m", "meow_platform", "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "127.0.0.1" in output and password not in output


def test_settings_errors_never_echo_their_inputs(tmp_path):
    """A mistyped setting fails start-up with pydantic's message, which quoted the input: the job
    environment holds storage credentials, the database URL a password."""
    env = {
        **os.environ,
        "MEOW_PLATFORM_DATA_DIR": str(tmp_path),
        "MEOW_PLATFORM_DATABASE_URL": "postgresql://meow:Pw-9@db/meow",
        "MEOW_PLATFORM_JOB_ENV": '{"AWS_SECRET_ACCESS_KEY": ["s3cr3t-value"]}',
    }
    done = subprocess.run(
        [sys.executable, "-m", "meow_platform", "serve"], env=env, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "job_env.AWS_SECRET_ACCESS_KEY" in output
    assert "s3cr3t-value" not in output and "Pw-9" not in output
