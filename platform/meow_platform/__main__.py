"""`python -m meow_platform serve|migrate`: run the control plane, or only migrate its store.

Configuration comes from `MEOW_PLATFORM_*` environment variables (see settings.py); the flags
below override the listening address only.
"""

from __future__ import annotations

import logging

import click
import uvicorn

from meow_platform.settings import Settings


@click.group()
def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces every plugin and step at INFO on each start.
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@click.option("--host", help="Listen address (default MEOW_PLATFORM_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (default MEOW_PLATFORM_PORT or 8700).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the job API; with the local backend and no Ray address, start a local Ray too."""
    from meow_platform.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    click.echo(
        f"meow control plane: http://{settings.host}:{settings.port} (store {settings.resolved_database_url()})",
        err=True,
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


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
