"""Tenant routes: submit, list, read, cancel jobs; their events, logs and artifacts.

A job id of another tenant answers exactly like an unknown one (404): ids are not secrets, but
whether one exists is not the caller's business.
"""

from __future__ import annotations

import mimetypes
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from meow.pipeline.validate import InvalidRun, check_text
from meow_platform.api.deps import Ctx, TenantCaller, error
from meow_platform.api.schemas import ArtifactsOut, EventOut, JobDetail, JobOut, JobPage, JobState, JobSubmit, LogChunk
from meow_platform.artifacts import Artifacts
from meow_platform.backends import BackendUnavailable
from meow_platform.db import Job
from meow_platform.policy import SpecRejected, check_spec
from meow_platform.quotas import QuotaExceeded, check_job_size, check_slots
from meow_platform.settings import Quota
from meow_platform.store import ACTIVE, FINAL, QUEUED, AlreadyExists

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
MAX_LOG_CHUNK = 1 << 20

SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobOut, "description": "the job this request id already created"},
    409: {"description": "the request id was used before with a different spec"},
    413: {"description": "a spec over `max_spec_bytes` (`spec_too_large`) or a request body over `max_request_bytes`"},
    422: {"description": "invalid spec, forbidden key or location, or a per-job quota exceeded (`quota_exceeded`)"},
    429: {
        "description": "no free slot (`max_concurrent_jobs` under policy reject, else `max_queued_jobs`), rate limit"
    },
}


def _job(ctx: Ctx, who: TenantCaller, job_id: str) -> Job:
    job = ctx.store.job(job_id, tenant=who.tenant)
    if job is None:
        raise error(404, "not_found", f"no job {job_id!r}")
    return job


def _same_request(job: Job, sha256: str, response: Response) -> JobOut:
    if job.spec_sha256 != sha256:
        raise error(409, "request_id_reused", "this request id was used for a different spec")
    response.status_code = 200
    return JobOut.of(job)


@router.post("", status_code=201, response_model=JobOut, responses=SUBMIT_RESPONSES)
def submit_job(body: JobSubmit, ctx: Ctx, who: TenantCaller, response: Response) -> JobOut:
    """Validate a spec and queue it; the scheduler submits it to the backend when a slot is free."""
    tenant, settings = ctx.store.tenant(who.tenant), ctx.settings
    try:
        accepted = check_spec(
            body.spec,
            [tenant.artifact_prefix, *tenant.read_prefixes],
            artifact_root=settings.resolved_artifact_root(),
            platform_dir=str(settings.data_dir),
            protected=settings.platform_files(),
            max_bytes=settings.max_spec_bytes,
        )
    except SpecRejected as e:
        ctx.metrics.rejected.labels(who.tenant, e.code).inc()
        raise error(413 if e.code == "spec_too_large" else 422, e.code, str(e)) from None
    if body.request_id and (done := ctx.store.job_by_request_id(who.tenant, body.request_id)):
        return _same_request(done, accepted.sha256, response)
    try:  # what `meow validate` checks: every record, the models; one line naming file and line
        check_text(accepted.text, source="spec")
    except InvalidRun as e:
        ctx.metrics.rejected.labels(who.tenant, "invalid_input").inc()
        raise error(422, "invalid_input", str(e)) from None
    quota = Quota(**tenant.quota)
    try:
        check_job_size(quota, accepted)
        with ctx.submit_lock:
            check_slots(quota, ctx.store.count_jobs(who.tenant, [QUEUED, *ACTIVE]))
            job_id = secrets.token_hex(8)
            job = ctx.store.add_job(
                Job(
                    id=job_id,
                    tenant=who.tenant,
                    request_id=body.request_id,
                    spec=accepted.text,
                    spec_sha256=accepted.sha256,
                    workers=accepted.workers,
                    cpus=accepted.cpus,
                    gpus=accepted.gpus,
                    backend=ctx.settings.backend,
                    run_dir=f"{tenant.artifact_prefix}/runs/{job_id}",
                )
            )
    except QuotaExceeded as e:
        ctx.metrics.rejected.labels(who.tenant, e.quota).inc()
        details = {"quota": e.quota, "limit": e.limit, "requested": e.requested}
        if e.retryable:
            raise error(429, "quota_exceeded", str(e), headers={"Retry-After": "30"}, **details) from None
        raise error(422, "quota_exceeded", str(e), **details) from None
    except AlreadyExists:
        # The same request id raced in from another connection; that one won.
        return _same_request(ctx.store.job_by_request_id(who.tenant, body.request_id), accepted.sha256, response)
    ctx.metrics.submitted.labels(who.tenant).inc()
    ctx.scheduler.wake()
    return JobOut.of(job)


@router.get("", response_model=JobPage)
def list_jobs(
    ctx: Ctx,
    who: TenantCaller,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: str | None = None,
    state: JobState | None = None,
) -> JobPage:
    """This tenant's jobs, newest first; pass `next_page_token` back as `page_token` for more."""
    try:
        rows, token = ctx.store.jobs_page(who.tenant, limit, page_token, state)
    except ValueError as e:
        raise error(400, "bad_page_token", str(e)) from None
    return JobPage(items=[JobOut.of(j) for j in rows], next_page_token=token)


@router.get("/{job_id}", response_model=JobDetail)
def get_job(job_id: str, ctx: Ctx, who: TenantCaller) -> JobDetail:
    job = _job(ctx, who, job_id)
    progress = Artifacts(job.run_dir).status() if job.state != QUEUED else None
    return JobDetail.of(job, progress=progress)


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut)
def cancel_job(job_id: str, ctx: Ctx, who: TenantCaller) -> JobOut:
    """A queued job is cancelled at once; a launched one is stopped on the backend by the scheduler
    and becomes `cancelled` when the backend confirms (or `succeeded` if it finished first)."""
    job = _job(ctx, who, job_id)
    if job.state in FINAL:
        raise error(409, "job_finished", f"job {job_id} already {job.state}")
    if job.state == QUEUED and (cancelled := ctx.store.transition(job.id, "cancelled", "cancelled by the tenant")):
        ctx.metrics.finished.labels(who.tenant, "cancelled").inc()
        return JobOut.of(cancelled)
    job = ctx.store.request_cancel(job.id)
    ctx.scheduler.wake()
    return JobOut.of(job)


@router.get("/{job_id}/events", response_model=list[EventOut])
def job_events(job_id: str, ctx: Ctx, who: TenantCaller):
    return ctx.store.events(_job(ctx, who, job_id).id)


@router.get("/{job_id}/logs", response_model=LogChunk)
def job_logs(job_id: str, ctx: Ctx, who: TenantCaller, offset: Annotated[int, Query(ge=0)] = 0) -> LogChunk:
    """The driver's output from character `offset` on (at most 1 MiB per call)."""
    job = _job(ctx, who, job_id)
    text = ""
    if job.backend_id:
        try:
            text = ctx.backend.logs(job.backend_id)
        except BackendUnavailable as e:
            ctx.metrics.backend_errors.labels(ctx.backend.name, "logs").inc()
            raise error(503, "backend_unavailable", str(e), headers={"Retry-After": "5"}) from None
    chunk = text[offset : offset + MAX_LOG_CHUNK]
    final = job.state in FINAL and offset + len(chunk) >= len(text)
    return LogChunk(text=chunk, offset=offset, next_offset=offset + len(chunk), final=final)


@router.get("/{job_id}/artifacts", response_model=ArtifactsOut)
def job_artifacts(job_id: str, ctx: Ctx, who: TenantCaller) -> ArtifactsOut:
    """Where the job's outputs are: the run directory, the unlearned model, metrics, report files."""
    return ArtifactsOut(**Artifacts(_job(ctx, who, job_id).run_dir).summary())


@router.get("/{job_id}/artifacts/metrics.json")
def job_metrics(job_id: str, ctx: Ctx, who: TenantCaller) -> dict[str, Any]:
    metrics = Artifacts(_job(ctx, who, job_id).run_dir).metrics()
    if metrics is None:
        raise error(404, "not_found", "this job has no metrics.json (yet)")
    return metrics


@router.get("/{job_id}/artifacts/report/{name}", response_class=Response)
def job_report_file(job_id: str, name: str, ctx: Ctx, who: TenantCaller) -> Response:
    content = Artifacts(_job(ctx, who, job_id).run_dir).report_file(name)
    if content is None:
        raise error(404, "not_found", f"this job's report has no file {name!r}")
    return Response(content, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")
