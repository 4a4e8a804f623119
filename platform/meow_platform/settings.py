"""Control-plane configuration: every key is an environment variable `MEOW_PLATFORM_<KEY>`.

Nested keys use a double underscore (`MEOW_PLATFORM_KUBERAY__IMAGE`,
`MEOW_PLATFORM_DEFAULT_QUOTA__MAX_CONCURRENT_JOBS`). The defaults are the embedded set-up: SQLite
and artifacts under MEOW_HOME, a local Ray on 127.0.0.1, the API on 127.0.0.1:8700.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from meow.models.cache import meow_home
from meow.quantities import Memory, gib


class Quota(BaseModel):
    """Per-tenant limits. A job larger than a per-job limit is always rejected; a job that only has
    to wait for a free slot is queued or rejected according to `over_quota`."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent_jobs: int = Field(2, ge=0, description="jobs submitted to the backend or running at once")
    max_queued_jobs: int = Field(10, ge=0, description="jobs waiting for a slot")
    max_workers_per_job: int = Field(4, ge=0, description="training workers one job may ask for")
    max_cpus_per_job: float = Field(8, ge=0, description="CPUs the largest stage of one job may ask for")
    max_gpus_per_job: float = Field(0, ge=0, description="GPUs the largest stage of one job may ask for")
    max_memory_per_job: Memory = Field(
        gib(32),
        description="memory (bytes, or a size such as 32GiB or 32Gi) the largest stage of one job may ask for",
    )
    over_quota: Literal["queue", "reject"] = Field("queue", description="what happens when no slot is free")
    requests_per_minute: int = Field(120, ge=1, description="API requests per minute (token bucket, burst = 1 minute)")


class LocalRaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Ray dashboard/Jobs API URL of an existing cluster (http://127.0.0.1:8265); empty: start one.
    address: str | None = None
    # CPUs of a cluster the platform starts (default: all of this machine's).
    num_cpus: int | None = Field(None, ge=1)


class KubeRaySettings(BaseModel):
    """How each submission becomes a RayJob (see `backends/kuberay.py:build_rayjob`)."""

    model_config = ConfigDict(extra="forbid")

    image: str = "ghcr.io/meow-unlearn/meow:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    # Secrets in the tenant's namespace for pulling `image` (Ray pods and the job submitter).
    image_pull_secrets: list[str] = []
    ray_version: str = "2.60.0"
    # Namespace of a tenant whose record names none.
    namespace_template: str = "meow-{tenant}"
    service_account: str | None = None
    # Secret in the tenant's namespace whose keys become the job's environment (storage credentials).
    env_secret: str | None = None
    # PersistentVolumeClaim in the tenant's namespace that every Ray pod of a job mounts at
    # `artifacts_mount_path`: run directories on a shared volume instead of S3. Empty: none.
    artifacts_claim: str | None = None
    artifacts_mount_path: str = "/var/lib/meow/artifacts"
    # fsGroup of pods mounting that claim: the Ray image's `meow` group, so that volumes supporting
    # fsGroup (most block and CSI ones; not NFS) are writable by the non-root user.
    artifacts_fs_group: int = Field(1000, ge=0)
    ttl_seconds_after_finished: int = Field(3600, ge=0)
    active_deadline_seconds: int = Field(86400, ge=1)
    backoff_limit: int = Field(0, ge=0)
    head_cpu: str = "1"
    head_memory: str = "4Gi"
    worker_memory: str = "8Gi"
    # Kueue LocalQueue for tenants whose record names none; empty: no Kueue label.
    queue_name: str | None = None
    # Kubernetes API server; empty: in-cluster config, else ~/.kube/config.
    api_server: str | None = None


class Settings(BaseSettings):
    # Errors never echo inputs: the database URL carries a password, `job_env` storage credentials.
    model_config = SettingsConfigDict(
        env_prefix="MEOW_PLATFORM_", env_nested_delimiter="__", extra="forbid", hide_input_in_errors=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8700, ge=1, le=65535)
    data_dir: Path = Field(default_factory=lambda: meow_home() / "platform")
    # SQLAlchemy URL; empty: SQLite in data_dir. postgresql+psycopg://user:pw@host/db for production.
    database_url: str | None = None
    # The admin bearer token (or a file holding it, e.g. a mounted Kubernetes secret). With neither,
    # one is generated into data_dir/admin-token (mode 0600) on first start.
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None
    # A token that may only read /metrics (for Prometheus); the admin token works too. Or a file
    # holding it (a mounted Secret), read again at every request: a rotation needs no restart.
    metrics_token: SecretStr | None = None
    metrics_token_file: Path | None = None
    backend: Literal["local", "kuberay"] = "local"
    # Where run directories go: <artifact_root>/<tenant>/runs/<job id>. Local path or s3://bucket/prefix.
    artifact_root: str | None = None
    # Environment given to every job (e.g. AWS_ENDPOINT_URL); never taken from tenants.
    job_env: dict[str, str] = {}
    poll_interval_s: float = Field(2.0, gt=0)
    max_request_bytes: int = Field(1 << 20, ge=1024)
    # A job's spec (YAML text, or JSON in the request body), refused with 413 before it is parsed:
    # the largest shipped spec is 1.2 KB, and parsing YAML costs ~10 ms of CPU per KB.
    max_spec_bytes: int = Field(64 << 10, ge=1024)
    default_quota: Quota = Quota()
    ray: LocalRaySettings = LocalRaySettings()
    kuberay: KubeRaySettings = KubeRaySettings()

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'platform.db'}"

    def platform_files(self) -> list[str]:
        """Files no job may name whatever a tenant's read prefixes say: the store (SQLite, its
        journals) and the token files. The data directory outside the artifact root is refused too."""
        files = [self.data_dir / "admin-token", *[f for f in (self.admin_token_file, self.metrics_token_file) if f]]
        url = make_url(self.resolved_database_url())
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            files += [Path(url.database + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
        return [os.path.abspath(f) for f in files]

    def current_metrics_token(self) -> str | None:
        """The metrics token now: the file's content when a file is set (None while it is unreadable)."""
        if self.metrics_token_file is not None:
            try:
                return self.metrics_token_file.read_text().strip() or None
            except OSError:
                return None
        return self.metrics_token.get_secret_value() if self.metrics_token else None

    def resolved_artifact_root(self) -> str:
        return (self.artifact_root or str(self.data_dir / "artifacts")).rstrip("/")

    @model_validator(mode="after")
    def _job_pods_see_the_artifact_root(self) -> Settings:
        # A run directory outside the mounted claim would be written to the pod's own disk and lost.
        mount = self.kuberay.artifacts_mount_path.rstrip("/")
        root = self.resolved_artifact_root()
        under_mount = root == mount or root.startswith(mount + "/")
        if self.backend == "kuberay" and self.kuberay.artifacts_claim and not under_mount:
            raise ValueError(
                f"artifact_root {root!r} is not under kuberay.artifacts_mount_path {mount!r}, "
                f"where job pods mount the claim {self.kuberay.artifacts_claim!r}"
            )
        return self
