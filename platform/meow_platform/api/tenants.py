"""Admin routes: tenants (create, list, read, update/disable) and their API tokens."""

from __future__ import annotations

from fastapi import APIRouter

from meow_platform.api.deps import Admin, Ctx, error
from meow_platform.api.schemas import TenantCreate, TenantOut, TenantUpdate, TokenCreate, TokenCreated, TokenOut
from meow_platform.auth import format_token, new_secret, sha256
from meow_platform.db import Tenant
from meow_platform.store import AlreadyExists

router = APIRouter(prefix="/v1/tenants", tags=["tenants (admin)"])


def _tenant(ctx: Ctx, name: str) -> Tenant:
    row = ctx.store.tenant(name)
    if row is None:
        raise error(404, "not_found", f"no tenant {name!r}")
    return row


@router.post("", status_code=201, response_model=TenantOut)
def create_tenant(body: TenantCreate, ctx: Ctx, _: Admin) -> Tenant:
    settings = ctx.settings
    try:
        tenant = ctx.store.create_tenant(
            name=body.name,
            disabled=False,
            quota=(body.quota or settings.default_quota).model_dump(),
            artifact_prefix=f"{settings.resolved_artifact_root()}/{body.name}",
            read_prefixes=body.read_prefixes,
            namespace=body.namespace or settings.kuberay.namespace_template.format(tenant=body.name),
            queue_name=body.queue_name,
        )
    except AlreadyExists:
        raise error(409, "conflict", f"tenant {body.name!r} exists") from None
    ctx.metrics.track_tenant(tenant.name)
    return tenant


@router.get("", response_model=list[TenantOut])
def list_tenants(ctx: Ctx, _: Admin) -> list[Tenant]:
    return ctx.store.tenants()


@router.get("/{name}", response_model=TenantOut)
def get_tenant(name: str, ctx: Ctx, _: Admin) -> Tenant:
    return _tenant(ctx, name)


@router.patch("/{name}", response_model=TenantOut)
def update_tenant(name: str, body: TenantUpdate, ctx: Ctx, _: Admin) -> Tenant:
    """Change quota, read prefixes or queue, or disable (`{"disabled": true}`): a disabled tenant's
    tokens are refused (403) and its queued jobs wait; running jobs run to their end."""
    _tenant(ctx, name)
    changes = body.model_dump(exclude_none=True)
    if body.quota is not None:
        changes["quota"] = body.quota.model_dump()
    tenant = ctx.store.update_tenant(name, **changes)
    if ctx.scheduler is not None:
        ctx.scheduler.wake()
    return tenant


@router.post("/{name}/tokens", status_code=201, response_model=TokenCreated)
def create_token(name: str, body: TokenCreate, ctx: Ctx, _: Admin) -> TokenCreated:
    _tenant(ctx, name)
    secret = new_secret()
    row = ctx.store.add_token(name, sha256(secret), body.description)
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=format_token(row.id, secret))


@router.get("/{name}/tokens", response_model=list[TokenOut])
def list_tokens(name: str, ctx: Ctx, _: Admin):
    _tenant(ctx, name)
    return ctx.store.tokens(name)


@router.delete("/{name}/tokens/{token_id}", response_model=TokenOut)
def revoke_token(name: str, token_id: str, ctx: Ctx, _: Admin):
    row = ctx.store.revoke_token(name, token_id)
    if row is None:
        raise error(404, "not_found", f"tenant {name!r} has no token {token_id!r}")
    return row
