"""Request and response bodies of the job API (they make up /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from meow_platform.policy import LocationRefused, canonical_location
from meow_platform.settings import Quota
from meow_platform.store import STATES

JobState = Literal[STATES]  # type: ignore[valid-type]
# Tenant names become namespaces (`meow-<name>`) and path segments: a short DNS label.
TENANT_NAME = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
DNS_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadPrefixes(Strict):
    @field_validator("read_prefixes", check_fields=False)
    @classmethod
    def _locations(cls, prefixes: list[str] | None) -> list[str] | None:
        for prefix in prefixes or []:
            try:
                canonical_location(prefix)
            except LocationRefused as e:
                raise ValueError(f"read prefix {prefix!r} {e}") from None
        return prefixes


class TenantCreate(ReadPrefixes):
    name: str = Field(pattern=TENANT_NAME)
    quota: Quota | None = Field(None, description="default: the platform's default quota")
    read_prefixes: list[str] = Field(
        [], description="extra read-only locations (buckets, shared models) specs may name"
    )
    namespace: str | None = Field(
        None, pattern=DNS_LABEL, description="Kubernetes namespace (kuberay); default from the settings' template"
    )
    queue_name: str | None = Field(None, pattern=DNS_LABEL, description="Kueue LocalQueue for this tenant's RayJobs")


class TenantUpdate(ReadPrefixes):
    disabled: bool | None = None
    quota: Quota | None = None
    read_prefixes: list[str] | None = None
    queue_name: str | None = Field(None, pattern=DNS_LABEL)


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    disabled: bool
    quota: Quota
    artifact_prefix: str
    read_prefixes: list[str]
    namespace: str
    queue_name: str | None
    created_at: datetime


class TokenCreate(Strict):
    description: str = Field("", max_length=200)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant: str
    description: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token; shown only in this response, stored only as a hash")


class JobSubmit(Strict):
    spec: str | dict[str, Any] = Field(description="a pipeline spec: YAML text, or the same as a JSON object")
    request_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="client-chosen id: resubmitting it returns the job it created instead of a new one",
    )


class Resources(BaseModel):
    workers: int
    cpus: float
    gpus: float


class JobOut(BaseModel):
    id: str
    tenant: str
    request_id: str | None
    state: JobState
    reason: str | None
    backend: str
    run_dir: str
    resources: Resources
    cancel_requested: bool
    created_at: datetime
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, job: Any, **extra: Any) -> JobOut:
        fields = {name: getattr(job, name) for name in cls.model_fields if name != "resources" and hasattr(job, name)}
        return cls(**fields, resources=Resources(workers=job.workers, cpus=job.cpus, gpus=job.gpus), **extra)


class JobDetail(JobOut):
    spec: str
    progress: dict[str, Any] | None = Field(None, description="the run's status.json: current stage, per-stage states")


class JobPage(BaseModel):
    items: list[JobOut]
    next_page_token: str | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    state: JobState
    message: str


class LogChunk(BaseModel):
    text: str
    offset: int
    next_offset: int
    final: bool = Field(description="the job has finished: no more text will come")


class ArtifactsOut(BaseModel):
    run_dir: str
    model_uri: str | None
    metrics: bool
    report: list[str]


class Principal(BaseModel):
    scope: Literal["admin", "metrics", "tenant"]
    tenant: str | None
