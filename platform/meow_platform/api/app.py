"""The control plane's HTTP app: job API, health, metrics; the scheduler runs inside its lifespan."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from meow_platform.api import jobs, tenants
from meow_platform.api.deps import AnyCaller, Context, Ctx, error
from meow_platform.api.schemas import Principal
from meow_platform.auth import Authenticator
from meow_platform.backends import Backend, create_backend
from meow_platform.db import make_engine, migrate
from meow_platform.metrics import PlatformMetrics
from meow_platform.scheduler import Scheduler
from meow_platform.settings import Settings
from meow_platform.store import Store

log = logging.getLogger("meow_platform")


def admin_token(settings: Settings) -> str:
    """The configured admin token, or one generated once into data_dir/admin-token (mode 0600)."""
    if settings.admin_token:
        return settings.admin_token.get_secret_value()
    path = settings.admin_token_file or settings.data_dir / "admin-token"
    if not path.exists() and settings.admin_token_file is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        log.warning("generated an admin token in %s", path)
    return path.read_text().strip()


def private_data_dir(settings: Settings) -> None:
    """The data directory holds the store, the admin token and the local Ray's state: owner-only
    (0700), also when something created it before with the default mode."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)


def create_app(settings: Settings, backend_factory: Callable[[Settings], Backend] = create_backend) -> FastAPI:
    private_data_dir(settings)
    engine = make_engine(settings.resolved_database_url())
    migrate(engine)
    store = Store(engine)
    metrics = PlatformMetrics(store)
    for tenant in store.tenants():
        metrics.track_tenant(tenant.name)
    ctx = Context(
        settings=settings,
        store=store,
        auth=Authenticator(store, admin_token(settings), settings.current_metrics_token),
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.backend = backend_factory(settings)
        ctx.scheduler = Scheduler(store, ctx.backend, settings, metrics)
        # Reconciles every unfinished job with the backend before the first request is served.
        ctx.scheduler.start()
        log.info("control plane ready on %s:%s (backend %s)", settings.host, settings.port, settings.backend)
        try:
            yield
        finally:
            ctx.scheduler.stop()
            ctx.backend.close()
            engine.dispose()

    app = FastAPI(
        title="meow control plane",
        version="0.1.0",
        description="Multi-tenant job API for MEOW unlearning runs. Every route but /healthz, /readyz and "
        "/openapi.json needs a bearer token.",
        lifespan=lifespan,
    )
    app.state.context = ctx
    app.include_router(tenants.router)
    app.include_router(jobs.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodyLimitAndMetrics, limit=settings.max_request_bytes, metrics=metrics)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(ctx: Ctx) -> Response:
        """Readiness: the store answers and the scheduler runs."""
        with ctx.store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        ready = ctx.scheduler is not None and ctx.scheduler.alive()
        return JSONResponse({"status": "ok" if ready else "starting"}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus_metrics(ctx: Ctx, who: AnyCaller) -> Response:
        """Prometheus metrics (`meow_platform_*`); the admin or the metrics token."""
        if who.scope not in ("admin", "metrics"):
            raise error(403, "forbidden", "metrics need the admin or the metrics token")
        return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/whoami", response_model=Principal, tags=["health"])
    def whoami(who: AnyCaller) -> Principal:
        return Principal(scope=who.scope, tenant=who.tenant)

    return app


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default echoes the offending input; request bodies carry specs, so keep only where and what.
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": {"code": "invalid_request", "message": "invalid request", "errors": errors}}, 422)


class BodyLimitAndMetrics:
    """ASGI middleware: refuse bodies over `limit` bytes (413) and count/time every request.

    The body is read here, up to the limit, before the app sees it: a chunked upload cannot slip past
    a Content-Length check. Routes are labelled by their template (`/v1/jobs/{job_id}`), not the path.
    """

    def __init__(self, app: Any, limit: int, metrics: PlatformMetrics):
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_and_record(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            body_receive = await self._read_body(scope, receive)
            if body_receive is None:
                status[0] = 413
                await _too_large(send, self.limit)
            else:
                await self.app(scope, body_receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status[0])).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)

    async def _read_body(self, scope: dict, receive: Callable) -> Callable | None:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(message, receive)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return None
            more = message.get("more_body", False)
        return _replay({"type": "http.request", "body": b"".join(chunks), "more_body": False}, receive)


def _replay(first: dict, receive: Callable) -> Callable:
    """A `receive` that hands out the buffered body once, then waits on the real one (disconnects)."""
    pending = [first]

    async def replay() -> dict:
        return pending.pop() if pending else await receive()

    return replay


async def _too_large(send: Callable, limit: int) -> None:
    body = b'{"detail":{"code":"too_large","message":"request body over ' + str(limit).encode() + b' bytes"}}'
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
