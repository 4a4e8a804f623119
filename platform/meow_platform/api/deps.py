"""What every route reaches: the control plane's parts, and who is calling."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meow_platform.auth import Authenticator, Forbidden, Principal, Unauthenticated
from meow_platform.backends import Backend
from meow_platform.metrics import PlatformMetrics
from meow_platform.ratelimit import RateLimiter
from meow_platform.scheduler import Scheduler
from meow_platform.settings import Quota, Settings
from meow_platform.store import Store


@dataclass
class Context:
    settings: Settings
    store: Store
    auth: Authenticator
    metrics: PlatformMetrics
    backend: Backend | None = None
    scheduler: Scheduler | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)
    # Quota checks and the insert they allow happen together (one replica, many worker threads).
    submit_lock: threading.Lock = field(default_factory=threading.Lock)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra) -> HTTPException:
    return HTTPException(status, detail={"code": code, "message": message, **extra}, headers=headers)


def context(request: Request) -> Context:
    return request.app.state.context


# Declared so that /openapi.json documents bearer auth; we check the header ourselves.
bearer = HTTPBearer(auto_error=False, description="an API token: the admin token or a tenant token")
Ctx = Annotated[Context, Depends(context)]


def principal(ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    try:
        return ctx.auth.authenticate(header)
    except Unauthenticated as e:
        raise error(401, "unauthenticated", str(e), headers={"WWW-Authenticate": "Bearer"}) from None
    except Forbidden as e:
        raise error(403, "forbidden", str(e)) from None


def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.scope != "admin":
        raise error(403, "forbidden", "this needs the admin token")
    return who


def tenant(ctx: Ctx, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """A tenant caller, within its request rate."""
    if who.scope != "tenant":
        raise error(403, "forbidden", "jobs belong to tenants: use a tenant token (the admin token owns no jobs)")
    row = ctx.store.tenant(who.tenant)
    wait = ctx.limiter.acquire(who.tenant, Quota(**row.quota).requests_per_minute)
    if wait:
        ctx.metrics.rejected.labels(who.tenant, "rate_limited").inc()
        raise error(
            429, "rate_limited", "too many requests for this tenant", headers={"Retry-After": str(int(wait) + 1)}
        )
    return who


Admin = Annotated[Principal, Depends(admin)]
TenantCaller = Annotated[Principal, Depends(tenant)]
AnyCaller = Annotated[Principal, Depends(principal)]
