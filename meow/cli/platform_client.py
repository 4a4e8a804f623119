"""`meow submit / jobs / job / logs / cancel`: the job API's client; `meow platform`: run and administer it.

The client reads `MEOW_API_URL` (default http://127.0.0.1:8700) and `MEOW_TOKEN` (a tenant token;
the admin token for `meow platform tenants|tokens`). It talks HTTP only: `meow` never imports the
control plane (`meow platform up` runs it as `python -m meow_platform serve`).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click
import httpx

DEFAULT_URL = "http://127.0.0.1:8700"
FINAL = ("succeeded", "failed", "cancelled")


def _client() -> httpx.Client:
    token = os.environ.get("MEOW_TOKEN")
    if not token:
        raise click.UsageError("set MEOW_TOKEN to an API token (and MEOW_API_URL if not local)")
    url = os.environ.get("MEOW_API_URL", DEFAULT_URL)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _call(method: str, path: str, retries: int = 0, **kwargs: Any) -> Any:
    """One API call; connection errors are retried `retries` times (only for idempotent calls)."""
    with _client() as client:
        for attempt in range(retries + 1):
            try:
                answer = client.request(method, path, **kwargs)
                break
            except httpx.TransportError as e:
                if attempt == retries:
                    raise click.ClickException(f"cannot reach {client.base_url}: {type(e).__name__}") from None
                time.sleep(2**attempt)
    if answer.is_error:
        detail = answer.json().get("detail") if "json" in answer.headers.get("content-type", "") else None
        message = detail.get("message", detail) if isinstance(detail, dict) else (detail or answer.text)
        raise click.ClickException(f"HTTP {answer.status_code}: {message}")
    return answer.json()


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--request-id", help="Idempotency key (default: a new one; retries of this call reuse it).")
@click.option("--wait", is_flag=True, help="Follow the job's logs until it finishes; exit 1 unless it succeeded.")
def submit(spec_path: Path, request_id: str | None, wait: bool) -> None:
    """Submit SPEC (a pipeline YAML) to the job API; prints the job id last."""
    body = {"spec": spec_path.read_text(), "request_id": request_id or uuid.uuid4().hex}
    # The request id makes the retry safe: a submit that reached the server returns the same job.
    job = _call("POST", "/v1/jobs", retries=3, json=body)
    click.echo(f"job {job['id']} {job['state']} (run directory {job['run_dir']})", err=True)
    click.echo(job["id"])
    if wait:
        _follow(job["id"])
        done = _call("GET", f"/v1/jobs/{job['id']}", retries=3)
        click.echo(f"job {done['id']} {done['state']}" + (f": {done['reason']}" if done["reason"] else ""), err=True)
        if done["state"] != "succeeded":
            sys.exit(1)


@click.command()
@click.option("--state", type=click.Choice(["queued", "submitted", "running", *FINAL]))
@click.option("--limit", default=50, show_default=True, help="Jobs per page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page, not only the newest.")
def jobs(state: str | None, limit: int, all_pages: bool) -> None:
    """This tenant's jobs, newest first."""
    params: dict[str, Any] = {"limit": limit, **({"state": state} if state else {})}
    click.echo(f"{'ID':16}  {'STATE':10}  {'CREATED':20}  REASON")
    while True:
        page = _call("GET", "/v1/jobs", retries=3, params=params)
        for job in page["items"]:
            click.echo(f"{job['id']:16}  {job['state']:10}  {job['created_at'][:19]:20}  {job['reason'] or ''}")
        if not (all_pages and page["next_page_token"]):
            return
        params["page_token"] = page["next_page_token"]


@click.command()
@click.argument("job_id")
def job(job_id: str) -> None:
    """One job: its record, progress, events and artifacts."""
    record = _call("GET", f"/v1/jobs/{job_id}", retries=3)
    record["events"] = _call("GET", f"/v1/jobs/{job_id}/events", retries=3)
    record["artifacts"] = _call("GET", f"/v1/jobs/{job_id}/artifacts", retries=3)
    _echo_json(record)


@click.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job finishes.")
def logs(job_id: str, follow: bool) -> None:
    """A job's driver output."""
    if follow:
        _follow(job_id)
    else:
        click.echo(_call("GET", f"/v1/jobs/{job_id}/logs", retries=3)["text"], nl=False)


def _follow(job_id: str, interval: float = 2.0) -> None:
    offset = 0
    while True:
        chunk = _call("GET", f"/v1/jobs/{job_id}/logs", retries=3, params={"offset": offset})
        click.echo(chunk["text"], nl=False)
        offset = chunk["next_offset"]
        if chunk["final"]:
            return
        if not chunk["text"]:
            time.sleep(interval)


@click.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a job (queued: at once; running: stopped on the backend)."""
    record = _call("POST", f"/v1/jobs/{job_id}/cancel")
    click.echo(f"job {record['id']} {record['state']}" + (" (cancel requested)" if record["cancel_requested"] else ""))


@click.group()
def platform() -> None:
    """Run the control plane and administer tenants (admin token in MEOW_TOKEN)."""


@platform.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True)
def up(host: str, port: int) -> None:
    """Start the control plane on the embedded default: SQLite and artifacts under MEOW_HOME, and a
    local Ray on 127.0.0.1 (unless MEOW_PLATFORM_RAY__ADDRESS names one). Runs until interrupted; the
    local Ray and its jobs keep running after it (a restart re-attaches; `meow platform down` stops it)."""
    _exec_control_plane("serve", "--host", host, "--port", str(port))


@platform.command()
def down() -> None:
    """Stop the local Ray that `meow platform up` left running, with any job still on it (refused while
    the control plane runs: stop it first)."""
    _exec_control_plane("stop-ray")


@platform.command()
def serve() -> None:
    """Run the control plane configured entirely by MEOW_PLATFORM_* variables (what the container runs)."""
    _exec_control_plane("serve")


# What `python -m meow_platform` imports beyond the library: the `platform` extra (pyproject.toml).
PLATFORM_EXTRA = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "kubernetes", "pydantic_settings")


def _exec_control_plane(*args: str) -> None:
    from importlib.util import find_spec

    missing = [name for name in PLATFORM_EXTRA if find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"the control plane needs the platform extra ({', '.join(missing)} missing): "
            "pip install 'meow-unlearn[platform]'"
        )
    os.execv(sys.executable, [sys.executable, "-m", "meow_platform", *args])


@platform.group()
def tenants() -> None:
    """Tenants (admin)."""


@tenants.command("create")
@click.argument("name")
@click.option("--quota", help="Quota as JSON, e.g. '{\"max_concurrent_jobs\": 1}' (default: the platform default).")
@click.option("--read-prefix", "read_prefixes", multiple=True, help="Extra location its specs may read (repeatable).")
def create_tenant(name: str, quota: str | None, read_prefixes: tuple[str, ...]) -> None:
    body = {"name": name, "read_prefixes": list(read_prefixes), **({"quota": json.loads(quota)} if quota else {})}
    _echo_json(_call("POST", "/v1/tenants", json=body))


@tenants.command("list")
def list_tenants() -> None:
    _echo_json(_call("GET", "/v1/tenants", retries=3))


@tenants.command("disable")
@click.argument("name")
def disable_tenant(name: str) -> None:
    _echo_json(_call("PATCH", f"/v1/tenants/{name}", json={"disabled": True}))


@platform.group()
def tokens() -> None:
    """API tokens of a tenant (admin)."""


@tokens.command("create")
@click.argument("tenant")
@click.option("--description", default="")
def create_token(tenant: str, description: str) -> None:
    """Prints the new token; it is shown this once only."""
    created = _call("POST", f"/v1/tenants/{tenant}/tokens", json={"description": description})
    click.echo(f"token {created['id']} for {tenant} (shown once, store it now):", err=True)
    click.echo(created["token"])


@tokens.command("revoke")
@click.argument("tenant")
@click.argument("token_id")
def revoke_token(tenant: str, token_id: str) -> None:
    _echo_json(_call("DELETE", f"/v1/tenants/{tenant}/tokens/{token_id}"))


PLATFORM_COMMANDS = (submit, jobs, job, logs, cancel, platform)
