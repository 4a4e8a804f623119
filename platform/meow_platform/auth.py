"""Bearer tokens and who is calling.

Tenant tokens look like `meow_<id>_<secret>`: the id finds the row, the secret is compared by its
sha256 (tokens are 256-bit random, so a fast hash is enough; no password stretching needed). The
secret is shown once, at creation, and never stored. The admin token comes from the settings and is
a separate scope: it manages tenants and tokens but owns no jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from meow_platform.store import Store

PREFIX = "meow_"


@dataclass(frozen=True)
class Principal:
    scope: Literal["admin", "metrics", "tenant"]
    tenant: str | None = None
    token_id: str | None = None


class Unauthenticated(Exception):
    """No token, an unknown or forged one, or a revoked one: all answered 401 alike."""


class Forbidden(Exception):
    pass


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def format_token(token_id: str, secret: str) -> str:
    return f"{PREFIX}{token_id}_{secret}"


class Authenticator:
    def __init__(self, store: Store, admin_token: str, metrics_token: str | Callable[[], str | None] | None = None):
        """`metrics_token` may be a function, asked at every request (a token file that rotates)."""
        self.store = store
        self._admin = sha256(admin_token)
        self._metrics_token = metrics_token if callable(metrics_token) else (lambda: metrics_token)

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing bearer token")
        digest = sha256(token.strip())
        if hmac.compare_digest(digest, self._admin):
            return Principal("admin")
        metrics = self._metrics_token()
        if metrics and hmac.compare_digest(digest, sha256(metrics)):
            return Principal("metrics")
        return self._tenant_principal(token.strip())

    def _tenant_principal(self, token: str) -> Principal:
        token_id, _, secret = token.removeprefix(PREFIX).partition("_")
        row = self.store.token(token_id) if token.startswith(PREFIX) and secret else None
        # Compare even when the row is missing, so timing does not tell unknown ids from bad secrets.
        expected = row.secret_sha256 if row is not None else "0" * 64
        if not hmac.compare_digest(sha256(secret), expected) or row is None or row.revoked_at is not None:
            raise Unauthenticated("invalid or revoked token")
        tenant = self.store.tenant(row.tenant)
        if tenant is None or tenant.disabled:
            raise Forbidden(f"tenant {row.tenant!r} is disabled")
        return Principal("tenant", tenant=row.tenant, token_id=row.id)
