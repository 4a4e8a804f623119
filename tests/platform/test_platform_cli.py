"""`meow submit / jobs / job / logs / cancel` and `meow platform tenants|tokens` against a real control
plane (jobs held in the queue: the end-to-end test runs them)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meow.cli import main

SPEC = "stages: [invert]\nunlearn: {train: {workers: 1}}\n"


@pytest.fixture(scope="module")
def admin_env(plane):
    return {"MEOW_API_URL": plane.url, "MEOW_TOKEN": plane.admin_token}


def meow(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def tenant_env(admin_env):
    created = meow(admin_env, "platform", "tenants", "create", "cli-team", "--quota", '{"max_concurrent_jobs": 0}')
    assert created.exit_code == 0 and json.loads(created.stdout)["name"] == "cli-team"
    token = meow(admin_env, "platform", "tokens", "create", "cli-team", "--description", "cli")
    assert token.exit_code == 0
    return {**admin_env, "MEOW_TOKEN": token.stdout.strip().splitlines()[-1]}


def test_submit_list_show_and_cancel(tenant_env, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    submitted = meow(tenant_env, "submit", str(spec), "--request-id", "cli-1")
    assert submitted.exit_code == 0
    job_id = submitted.stdout.strip().splitlines()[-1]
    again = meow(tenant_env, "submit", str(spec), "--request-id", "cli-1")
    assert again.stdout.strip().splitlines()[-1] == job_id, "the same request id gives the same job"
    listed = meow(tenant_env, "jobs")
    assert job_id in listed.stdout and "queued" in listed.stdout
    shown = json.loads(meow(tenant_env, "job", job_id).stdout)
    assert shown["id"] == job_id and shown["events"][0]["state"] == "queued"
    assert shown["artifacts"]["run_dir"].endswith(f"/cli-team/runs/{job_id}")
    cancelled = meow(tenant_env, "cancel", job_id)
    assert cancelled.stdout.strip() == f"job {job_id} cancelled"
    assert meow(tenant_env, "logs", job_id, "--follow").exit_code == 0, "a finished job's logs end"


def test_api_errors_become_messages_and_exit_codes(tenant_env, admin_env, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("unlearn: {method: 'os:system'}\n")
    refused = meow(tenant_env, "submit", str(spec))
    assert refused.exit_code == 1 and "HTTP 422" in refused.output and "unlearn.method" in refused.output
    assert "HTTP 404" in meow(tenant_env, "job", "0000000000000000").output
    assert "HTTP 401" in meow({**tenant_env, "MEOW_TOKEN": "meow_forged_token"}, "jobs").output
    assert "HTTP 403" in meow(tenant_env, "platform", "tenants", "list").output
    assert meow({}, "jobs").exit_code == 2, "no token: a usage error"


@pytest.mark.parametrize("command", [["up"], ["serve"], ["down"]])
def test_the_control_plane_without_the_platform_extra_says_what_to_install(monkeypatch, command):
    import importlib.util

    import meow.cli.platform_client as platform_client

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "sqlalchemy" else found(name))
    monkeypatch.setattr(platform_client.os, "execv", lambda *args: pytest.fail("started without the extra"))
    result = CliRunner().invoke(main, ["platform", *command])
    assert result.exit_code == 1
    assert "the control plane needs the platform extra (sqlalchemy missing)" in result.output
    assert "pip install 'meow-unlearn[platform]'" in result.output
