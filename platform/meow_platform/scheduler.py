"""The scheduler: the only part of the control plane that acts on the backend.

Each pass (at start, then every poll interval or when the API wakes it):
1. follows every submitted or running job on the backend, stopping those whose cancel was
   requested, and records final states (with reasons made of stage names and error types);
2. launches queued jobs, oldest first, while their tenant has a free slot.

The first pass is the reconciliation after a restart: the store says what should exist, the
backend what does, by the job's backend id (the local backend's Ray head and the KubeRay cluster
outlive the control plane). A job still running is followed on; one that ended while the control
plane was down gets the final state the backend reports; a job submitted just before a crash but
not yet recorded is adopted (submits are idempotent per job id); only a job the backend reports
failed or stopped, or no longer knows (its cluster is gone), ends failed or cancelled, and its
status.json is made to say so if its driver could not.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from meow_platform.artifacts import Artifacts
from meow_platform.backends import Backend, BackendRejected, BackendState, BackendStatus, BackendUnavailable, Launch
from meow_platform.db import Job, Tenant
from meow_platform.metrics import PlatformMetrics
from meow_platform.settings import Quota, Settings
from meow_platform.store import ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, SUBMITTED, SUCCEEDED, Store

log = logging.getLogger("meow_platform.scheduler")
BACKEND_OPERATIONS = ("submit", "status", "cancel", "logs")


class Scheduler:
    def __init__(self, store: Store, backend: Backend, settings: Settings, metrics: PlatformMetrics):
        self.store = store
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Passes never overlap: the thread runs them, but so does start() (reconciliation) first.
        self._pass_lock = threading.Lock()
        for operation in BACKEND_OPERATIONS:  # zero series from the start, so rates and alerts work
            metrics.backend_errors.labels(backend.name, operation)

    def start(self) -> None:
        self.run_pass()
        self._thread = threading.Thread(target=self._loop, name="meow-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_pass()
            except Exception:
                log.exception("scheduler pass failed; retrying next interval")

    def run_pass(self) -> None:
        with self._pass_lock:
            try:
                self._follow_active()
                self._launch_queued()
            except BackendUnavailable as e:
                # Nothing is decided while the backend is away; the next pass tries again.
                log.warning("backend unavailable: %s", e)

    def _follow_active(self) -> None:
        for job in self.store.jobs_in(ACTIVE):
            status = self._backend_call("status", self.backend.status, job.backend_id)
            if job.cancel_requested and status.state in (BackendState.PENDING, BackendState.RUNNING):
                self._backend_call("cancel", self.backend.cancel, job.backend_id)
                continue
            self._apply(job, status)

    def _apply(self, job: Job, status: BackendStatus) -> None:
        if status.state is BackendState.PENDING:
            return
        if status.state is BackendState.RUNNING:
            if job.state == SUBMITTED:
                self.store.transition(job.id, RUNNING, "running")
                log.info("job %s running", job.id)
            return
        state, reason = self._outcome(job, status)
        if state != SUCCEEDED:
            # A driver killed outright (or a run that never started) left status.json unfinished.
            Artifacts(job.run_dir).end_abnormally("DriverLost", reason)
        finished = self.store.transition(job.id, state, reason)
        if finished is not None:
            log.info("job %s %s", job.id, state)
            self.metrics.finished.labels(job.tenant, state).inc()
            start = finished.submitted_at or finished.created_at
            self.metrics.duration.labels(job.tenant, state).observe((finished.finished_at - start).total_seconds())

    def _outcome(self, job: Job, status: BackendStatus) -> tuple[str, str]:
        """Final state and reason, from the backend's verdict and the run's own status.json."""
        if status.state is BackendState.SUCCEEDED:
            return SUCCEEDED, "every stage finished"
        if status.state is BackendState.STOPPED or (status.state is BackendState.MISSING and job.cancel_requested):
            return CANCELLED, "cancelled by the tenant" if job.cancel_requested else "stopped on the backend"
        run = Artifacts(job.run_dir).status() or {}
        if run.get("state") == "succeeded":
            # vLLM can abort at interpreter exit after the work is done: results decide, not exit codes.
            return SUCCEEDED, f"every stage finished; the driver then exited abnormally ({status.detail})"
        failed = [
            (name, s.get("error", "error")) for name, s in run.get("stages", {}).items() if s.get("state") == "failed"
        ]
        if failed:
            return FAILED, "; ".join(f"stage {name} failed ({error})" for name, error in failed)
        return FAILED, status.detail or "failed on the backend"

    def _launch_queued(self) -> None:
        queued = self.store.jobs_in([QUEUED])
        if not queued:
            return
        tenants = {t.name: t for t in self.store.tenants()}
        active = Counter({name: self.store.count_jobs(name, ACTIVE) for name in {j.tenant for j in queued}})
        for job in queued:
            tenant = tenants[job.tenant]
            if tenant.disabled or active[job.tenant] >= Quota(**tenant.quota).max_concurrent_jobs:
                continue
            self._launch(job, tenant)
            active[job.tenant] += 1

    def _launch(self, job: Job, tenant: Tenant) -> None:
        launch = Launch(
            job_id=job.id,
            tenant=job.tenant,
            spec=job.spec,
            run_dir=job.run_dir,
            workers=job.workers,
            cpus=job.cpus,
            gpus=job.gpus,
            namespace=tenant.namespace,
            queue_name=tenant.queue_name,
            env=dict(self.settings.job_env),
        )
        try:
            backend_id = self._backend_call("submit", self.backend.submit, launch)
        except BackendRejected as e:
            self.store.transition(job.id, FAILED, str(e))
            self.metrics.finished.labels(job.tenant, FAILED).inc()
            return
        if self.store.transition(job.id, SUBMITTED, f"submitted to {self.backend.name}", backend_id=backend_id) is None:
            # Cancelled while we were submitting it: stop what we just started.
            self._backend_call("cancel", self.backend.cancel, backend_id)
            return
        log.info("job %s submitted to %s as %s", job.id, self.backend.name, backend_id)

    def _backend_call(self, operation: str, function, *args):
        try:
            return function(*args)
        except (BackendUnavailable, BackendRejected):
            self.metrics.backend_errors.labels(self.backend.name, operation).inc()
            raise
