"""The job store on SQLite and on a real PostgreSQL: migrations match the models, states only move
forward, pages and request ids."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from meow_platform.db import Base, Job, make_engine, migrate
from meow_platform.store import AlreadyExists, Store

DATABASES = itertools.count()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A PostgreSQL 16 server (the `pgserver` wheel) listening on a Unix socket only."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        server = request.getfixturevalue("postgres")
        name = f"store{next(DATABASES)}"
        server.psql(f"CREATE DATABASE {name};")
        url = server.get_uri(name).replace("postgresql://", "postgresql+psycopg://")
    engine = make_engine(url)
    migrate(engine)
    store = Store(engine)
    store.create_tenant(name="acme", quota={}, artifact_prefix="/a/acme", read_prefixes=[], namespace="meow-acme")
    yield store
    engine.dispose()


def _job(job_id: str, request_id: str | None = None) -> Job:
    return Job(
        id=job_id,
        tenant="acme",
        request_id=request_id,
        spec="{}",
        spec_sha256="0" * 64,
        workers=1,
        cpus=1,
        gpus=0,
        backend="local",
        run_dir=f"/a/acme/runs/{job_id}",
    )


def test_migrations_create_exactly_the_models_schema(store):
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_migrating_twice_is_a_no_op(store):
    migrate(store.engine)
    assert store.tenant("acme") is not None


def test_states_move_forward_with_timestamps_and_events(store):
    store.add_job(_job("j1"))
    assert store.transition("j1", "running") is None, "queued cannot jump to running"
    submitted = store.transition("j1", "submitted", "to local", backend_id="meow-j1")
    assert submitted.backend_id == "meow-j1" and submitted.submitted_at is not None
    running = store.transition("j1", "running")
    assert running.started_at >= submitted.submitted_at
    failed = store.transition("j1", "failed", "stage memo failed (RuntimeError)")
    assert failed.finished_at >= running.started_at and failed.reason == "stage memo failed (RuntimeError)"
    assert store.transition("j1", "succeeded") is None, "a final state is never left"
    assert [e.state for e in store.events("j1")] == ["queued", "submitted", "running", "failed"]
    assert failed.finished_at.tzinfo is not None


def test_request_id_is_unique_per_tenant(store):
    store.add_job(_job("j1", request_id="r-1"))
    with pytest.raises(AlreadyExists):
        store.add_job(_job("j2", request_id="r-1"))
    assert store.job_by_request_id("acme", "r-1").id == "j1"


def test_pages_cover_every_job_once_newest_first(store):
    for i in range(7):
        store.add_job(_job(f"j{i}"))
    seen, token = [], None
    while True:
        rows, token = store.jobs_page("acme", limit=3, cursor=token)
        seen += [r.id for r in rows]
        if token is None:
            break
    assert seen == [f"j{i}" for i in reversed(range(7))]
    with pytest.raises(ValueError):
        store.jobs_page("acme", limit=3, cursor="not-a-token")


def test_a_job_of_another_tenant_reads_as_missing(store):
    store.create_tenant(name="other", quota={}, artifact_prefix="/a/other", read_prefixes=[], namespace="meow-other")
    store.add_job(_job("j1"))
    assert store.job("j1", tenant="acme") is not None
    assert store.job("j1", tenant="other") is None


def test_the_migrations_render_for_postgresql(capsys):
    from alembic import command
    from alembic.config import Config

    from meow_platform.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", "postgresql+psycopg://meow@db.example/meow")
    command.upgrade(config, "head", sql=True)
    sql = capsys.readouterr().out
    for table in ("tenants", "api_tokens", "jobs", "job_events"):
        assert f"CREATE TABLE {table}" in sql
    assert "CONSTRAINT uq_jobs_tenant_request_id UNIQUE (tenant, request_id)" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql and "SERIAL" in sql
