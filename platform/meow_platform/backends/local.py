"""The `local` backend: one Ray job per submission through the Ray Jobs API.

The cluster is either given by address (an existing Ray dashboard URL) or the persistent
`LocalRayCluster` of the platform's data dir, which the backend starts on 127.0.0.1 or attaches to,
and leaves running on close: jobs outlive the control plane, and a restarted one follows them by
submission id. A head that died is started again (its jobs then read as missing). Ray itself
offers no isolation between jobs of one cluster (Ray FAQ), so this backend is for a single host or
a trusted group; tenants are still kept apart by the platform: specs are data, artifact locations
are per tenant, and only the platform talks to Ray. Production multi-tenancy is the `kuberay`
backend (a Ray cluster per job).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import requests
from ray.job_submission import JobStatus, JobSubmissionClient

from meow_platform.backends.base import (
    Backend,
    BackendRejected,
    BackendState,
    BackendStatus,
    BackendUnavailable,
    Launch,
    entrypoint,
)
from meow_platform.localray import LocalRayCluster, ray_auth_headers

log = logging.getLogger("meow_platform.backends.local")

STATES = {
    JobStatus.PENDING: BackendState.PENDING,
    JobStatus.RUNNING: BackendState.RUNNING,
    JobStatus.SUCCEEDED: BackendState.SUCCEEDED,
    JobStatus.FAILED: BackendState.FAILED,
    JobStatus.STOPPED: BackendState.STOPPED,
}


class LocalBackend(Backend):
    name = "local"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, state_dir: Path | None = None):
        """`address`: an existing cluster's Jobs API; else the head recorded in `state_dir` (started
        there if none runs); with neither, a head of this backend's own, stopped on close."""
        self.num_cpus, self.state_dir = num_cpus, state_dir
        self.cluster: LocalRayCluster | None = None
        if address:
            self.address = address
        else:
            self._start_cluster()
        self._client: JobSubmissionClient | None = None

    def _start_cluster(self) -> None:
        if self.state_dir is not None:
            self.cluster = LocalRayCluster.start_or_attach(self.state_dir, num_cpus=self.num_cpus)
        else:
            self.cluster = LocalRayCluster.start(num_cpus=self.num_cpus)
        self.address = self.cluster.dashboard_url
        self._client = None

    @property
    def client(self) -> JobSubmissionClient:
        if self._client is None:
            try:
                self._client = JobSubmissionClient(self.address, headers=ray_auth_headers())
            except (ConnectionError, requests.RequestException) as e:
                raise self._unavailable(e) from None
        return self._client

    def submit(self, launch: Launch) -> str:
        submission_id = f"meow-{launch.job_id}"
        if self._call(self._info, submission_id) is not None:
            return submission_id
        try:
            self._submit(launch, submission_id)
        except RuntimeError as e:
            status = re.search(r"status code (\d+)", str(e))
            code = f" (HTTP {status.group(1)})" if status else ""
            raise BackendRejected(f"the Ray Jobs API refused the job{code}") from None
        return submission_id

    def _submit(self, launch: Launch, submission_id: str) -> None:
        self._call(
            self.client.submit_job,
            entrypoint=entrypoint(launch.run_dir),
            submission_id=submission_id,
            runtime_env={"env_vars": launch.job_env()},
            # The driver only coordinates; stages ask Ray for their own CPUs and GPUs.
            entrypoint_num_cpus=0,
            metadata={"tenant": launch.tenant, "job_id": launch.job_id},
        )

    def status(self, backend_id: str) -> BackendStatus:
        info = self._call(self._info, backend_id)
        if info is None:
            return BackendStatus(BackendState.MISSING, "the Ray cluster has no such job")
        state = STATES[info.status]
        detail = ""
        if state is BackendState.FAILED:
            # error_type and exit code only: Ray's message carries the tail of the job's logs.
            exit_code = getattr(info, "driver_exit_code", None)
            detail = f"{info.error_type or 'failed'}" + (f", exit code {exit_code}" if exit_code is not None else "")
        return BackendStatus(state, detail)

    def cancel(self, backend_id: str) -> None:
        self._call(self.client.stop_job, backend_id)

    def logs(self, backend_id: str) -> str:
        return self._call(self.client.get_job_logs, backend_id)

    def close(self) -> None:
        """Stops only a head of this backend's own: a recorded (persistent) one keeps its jobs running."""
        if self.cluster is not None and self.cluster.state_dir is None:
            self.cluster.stop()

    def _info(self, submission_id: str):
        try:
            return self.client.get_job_info(submission_id)
        except RuntimeError as e:
            if "status code 404" in str(e):
                return None
            raise BackendUnavailable("Ray Jobs API error while reading a job") from None

    def _call(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ConnectionError, requests.RequestException) as e:
            raise self._unavailable(e) from None

    def _unavailable(self, error: Exception) -> BackendUnavailable:
        unavailable = BackendUnavailable(f"Ray Jobs API at {self.address}: {type(error).__name__}")
        if self.cluster is not None and not self.cluster.alive():
            # The head died under us (not merely busy): start a new one; the next pass finds the
            # old head's jobs missing and fails them with that reason.
            log.warning("the Ray head (pid %s) is gone; starting a new one", self.cluster.pid)
            self._start_cluster()
        return unavailable
