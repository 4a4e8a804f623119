"""`python -m meow_platform serve|migrate|stop-ray`: run the control plane, only migrate its store,
or stop the local Ray head it leaves running.

Configuration comes from `MEOW_PLATFORM_*` environment variables (see settings.py); the flags
below override the listening address only.
"""

from __future__ import annotations

import logging

import click
import uvicorn
from sqlalchemy import make_url

from meow_platform.settings import Settings
from meow_platform.storelock import StoreBusy, StoreLock


@click.group()
def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces every plugin and step at INFO on each start.
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@click.option("--host", help="Listen address (default MEOW_PLATFORM_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (default MEOW_PLATFORM_PORT or 8700).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the job API; with the local backend and no Ray address, start (or attach to) a local Ray
    head that outlives this process. SIGTERM stops the API only: jobs and the head keep running."""
    from meow_platform.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    # Before anything touches the store: a second control plane would fail the first one's jobs.
    lock = _lock_store(settings)
    store = make_url(settings.resolved_database_url()).render_as_string(hide_password=True)
    click.echo(f"meow control plane: http://{settings.host}:{settings.port} (store {store})", err=True)
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    finally:
        lock.release()


@main.command("stop-ray")
def stop_ray() -> None:
    """Stop the local Ray head the control plane left running (its running jobs stop with it). Refused
    while a control plane serves the store."""
    from meow_platform.localray import LocalRayCluster, state_dir

    settings = Settings()
    lock = _lock_store(settings)
    try:
        cluster = LocalRayCluster.attach(state_dir(settings.data_dir))
        if cluster is None:
            click.echo(f"no local Ray head recorded in {state_dir(settings.data_dir)}", err=True)
            return
        cluster.stop()
        click.echo(f"stopped the local Ray head (pid {cluster.pid})", err=True)
    finally:
        lock.release()


def _lock_store(settings: Settings) -> StoreLock:
    try:
        return StoreLock(settings.resolved_database_url()).acquire()
    except StoreBusy as e:
        raise click.ClickException(str(e)) from None


@main.command()
def migrate() -> None:
    """Bring the job store's schema up to date (what `serve` also does on start)."""
    from meow_platform.db import make_engine
    from meow_platform.db import migrate as upgrade

    settings = Settings()
    upgrade(make_engine(settings.resolved_database_url()))
    click.echo("store migrated", err=True)


if __name__ == "__main__":
    main()
