"""The job store: tenants, tokens, jobs and job events, one short transaction per operation.

Rows come back detached (`expire_on_commit=False`), so callers read them freely after the session
closed. Job states only move forward along `TRANSITIONS`; a final state is never left again, which
makes a late or repeated backend report harmless.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from meow_platform.db import ApiToken, Job, JobEvent, Tenant, utcnow

QUEUED, SUBMITTED, RUNNING = "queued", "submitted", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
ACTIVE = (SUBMITTED, RUNNING)
FINAL = (SUCCEEDED, FAILED, CANCELLED)
STATES = (QUEUED, *ACTIVE, *FINAL)
TRANSITIONS = {
    QUEUED: {SUBMITTED, FAILED, CANCELLED},
    SUBMITTED: {RUNNING, *FINAL},
    RUNNING: set(FINAL),
}


class AlreadyExists(Exception):
    pass


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # Tenants

    def create_tenant(self, **fields: Any) -> Tenant:
        tenant = Tenant(**fields)
        try:
            with self._tx() as s:
                s.add(tenant)
        except IntegrityError:
            raise AlreadyExists(fields["name"]) from None
        return tenant

    def tenant(self, name: str) -> Tenant | None:
        with self._tx() as s:
            return s.get(Tenant, name)

    def tenants(self) -> list[Tenant]:
        with self._tx() as s:
            return list(s.scalars(select(Tenant).order_by(Tenant.name)))

    def update_tenant(self, name: str, **changes: Any) -> Tenant | None:
        with self._tx() as s:
            tenant = s.get(Tenant, name)
            if tenant is not None:
                for key, value in changes.items():
                    setattr(tenant, key, value)
            return tenant

    # Tokens

    def add_token(self, tenant: str, secret_sha256: str, description: str) -> ApiToken:
        token = ApiToken(id=secrets.token_hex(6), tenant=tenant, secret_sha256=secret_sha256, description=description)
        with self._tx() as s:
            s.add(token)
        return token

    def token(self, token_id: str) -> ApiToken | None:
        with self._tx() as s:
            return s.get(ApiToken, token_id)

    def tokens(self, tenant: str) -> list[ApiToken]:
        with self._tx() as s:
            return list(s.scalars(select(ApiToken).where(ApiToken.tenant == tenant).order_by(ApiToken.created_at)))

    def revoke_token(self, tenant: str, token_id: str) -> ApiToken | None:
        with self._tx() as s:
            token = s.get(ApiToken, token_id)
            if token is None or token.tenant != tenant:
                return None
            token.revoked_at = token.revoked_at or utcnow()
            return token

    # Jobs

    def add_job(self, job: Job) -> Job:
        """Insert a new queued job; `AlreadyExists` when the tenant already used its request id."""
        job.state = QUEUED
        try:
            with self._tx() as s:
                s.add(job)
                s.add(JobEvent(job_id=job.id, state=QUEUED, message="accepted"))
        except IntegrityError:
            raise AlreadyExists(job.request_id) from None
        return job

    def job(self, job_id: str, tenant: str | None = None) -> Job | None:
        """The job, or None when it does not exist or (with `tenant`) belongs to someone else."""
        with self._tx() as s:
            job = s.get(Job, job_id)
        if job is None or (tenant is not None and job.tenant != tenant):
            return None
        return job

    def job_by_request_id(self, tenant: str, request_id: str) -> Job | None:
        with self._tx() as s:
            return s.scalar(select(Job).where(Job.tenant == tenant, Job.request_id == request_id))

    def jobs_page(
        self, tenant: str, limit: int, cursor: str | None = None, state: str | None = None
    ) -> tuple[list[Job], str | None]:
        """Newest first; the cursor is the (created_at, id) of the last row of the previous page."""
        query = select(Job).where(Job.tenant == tenant)
        if state:
            query = query.where(Job.state == state)
        if cursor:
            created, job_id = _decode_cursor(cursor)
            query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id)))
        with self._tx() as s:
            rows = list(s.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (_encode_cursor(rows[-1]) if more else None)

    def jobs_in(self, states: Iterable[str]) -> list[Job]:
        """Jobs in `states`, oldest first (the order queued jobs are launched in)."""
        with self._tx() as s:
            return list(s.scalars(select(Job).where(Job.state.in_(list(states))).order_by(Job.created_at, Job.id)))

    def count_jobs(self, tenant: str, states: Iterable[str]) -> int:
        with self._tx() as s:
            return s.scalar(
                select(func.count()).select_from(Job).where(Job.tenant == tenant, Job.state.in_(list(states)))
            )

    def counts_by_tenant_and_state(self) -> dict[tuple[str, str], int]:
        with self._tx() as s:
            rows = s.execute(select(Job.tenant, Job.state, func.count()).group_by(Job.tenant, Job.state))
            return {(tenant, state): n for tenant, state, n in rows}

    def transition(self, job_id: str, state: str, message: str = "", **fields: Any) -> Job | None:
        """Move a job to `state` (recording an event and the state's timestamp); None if not allowed."""
        with self._tx() as s:
            job = s.get(Job, job_id, with_for_update=True)
            if job is None or state not in TRANSITIONS.get(job.state, ()):
                return None
            now = utcnow()
            job.state, job.updated_at = state, now
            if state == SUBMITTED:
                job.submitted_at = now
            elif state == RUNNING:
                job.started_at = now
            elif state in FINAL:
                job.finished_at = now
                job.reason = message or None
            for key, value in fields.items():
                setattr(job, key, value)
            s.add(JobEvent(job_id=job.id, at=now, state=state, message=message))
            return job

    def request_cancel(self, job_id: str) -> Job | None:
        with self._tx() as s:
            job = s.get(Job, job_id, with_for_update=True)
            if job is not None and job.state not in FINAL and not job.cancel_requested:
                job.cancel_requested, job.updated_at = True, utcnow()
                s.add(JobEvent(job_id=job.id, state=job.state, message="cancel requested"))
            return job

    def events(self, job_id: str) -> list[JobEvent]:
        with self._tx() as s:
            return list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))


def _encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(json.dumps([job.created_at.isoformat(), job.id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created), str(job_id)
    except (ValueError, TypeError) as e:
        raise ValueError("invalid page token") from e
