"""The one interface every backend implements, and the job entrypoint they all run.

A backend starts one job per submission, reports its state, stops it and returns its logs. Submits
are idempotent per job id (the backend's name for a job derives from it), so a control plane that
crashed between starting a job and recording that it did finds and adopts the job on restart.
"""

from __future__ import annotations

import abc
import base64
import shlex
from dataclasses import dataclass, field
from enum import StrEnum

# The tenant's spec travels base64-encoded: the value passes through a shell on KubeRay's submitter
# (`ray job submit --runtime-env-json "..."`), and base64 has no character a shell would interpret.
SPEC_ENV = "MEOW_SPEC_B64"


@dataclass(frozen=True)
class Launch:
    """Everything a backend needs to start one job; built by the scheduler from the job record."""

    job_id: str
    tenant: str
    spec: str
    run_dir: str
    workers: int
    cpus: float
    gpus: float
    # KubeRay: the tenant's namespace and (optional) Kueue LocalQueue. Unused by the local backend.
    namespace: str = "default"
    queue_name: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def job_env(self) -> dict[str, str]:
        """The environment of the job's driver: platform-set values only, the spec encoded."""
        return {
            **self.env,
            "MEOW_TENANT": self.tenant,
            "MEOW_JOB_ID": self.job_id,
            SPEC_ENV: base64.b64encode(self.spec.encode()).decode(),
        }


def entrypoint(run_dir: str) -> str:
    """The only command a platform job runs: the MEOW driver on the spec from `SPEC_ENV`."""
    return f"python -m meow_platform.jobrun --run-dir {shlex.quote(run_dir)}"


class BackendState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    # The backend has no such job (lost with a cluster, or deleted).
    MISSING = "missing"


@dataclass(frozen=True)
class BackendStatus:
    state: BackendState
    # A short machine-made reason (error type, exit code). Never backend log text, which may quote data.
    detail: str = ""


class BackendUnavailable(Exception):
    """The backend could not be reached; nothing was decided, try again later."""


class BackendRejected(Exception):
    """The backend refused the job for good. The message is ours (status codes), not the backend's text."""


class Backend(abc.ABC):
    name: str

    @abc.abstractmethod
    def submit(self, launch: Launch) -> str:
        """Start the job (or find it already started); returns the backend's id for it."""

    @abc.abstractmethod
    def status(self, backend_id: str) -> BackendStatus: ...

    @abc.abstractmethod
    def cancel(self, backend_id: str) -> None:
        """Ask the backend to stop the job; the state changes when `status` reports it."""

    @abc.abstractmethod
    def logs(self, backend_id: str) -> str: ...

    def close(self) -> None:
        """Release what the backend holds (clients, a cluster it started)."""
