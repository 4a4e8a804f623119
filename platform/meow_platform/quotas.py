"""Quota decisions for one submission (see `settings.Quota` for the limits and docs/platform.md).

- A job asking for more workers, CPUs or GPUs than one job may have can never run: 422.
- Otherwise a tenant holds at most `max_concurrent_jobs` jobs submitted or running, plus (policy
  `queue`) `max_queued_jobs` waiting. A submission beyond that is refused with 429; under policy
  `reject` nothing waits, so a submission finding every slot taken is refused with 429 at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from meow_platform.policy import AcceptedSpec
from meow_platform.settings import Quota

QUOTAS = ("max_workers_per_job", "max_cpus_per_job", "max_gpus_per_job", "max_concurrent_jobs", "max_queued_jobs")


@dataclass
class QuotaExceeded(Exception):
    quota: str
    limit: float
    requested: float
    retryable: bool

    def __str__(self) -> str:
        what = "waiting for a running job to finish may help" if self.retryable else "this job can never run"
        return f"quota {self.quota} is {self.limit:g}, this submission needs {self.requested:g} ({what})"


def check_job_size(quota: Quota, spec: AcceptedSpec) -> None:
    for name, limit, requested in (
        ("max_workers_per_job", quota.max_workers_per_job, spec.workers),
        ("max_cpus_per_job", quota.max_cpus_per_job, spec.cpus),
        ("max_gpus_per_job", quota.max_gpus_per_job, spec.gpus),
    ):
        if requested > limit:
            raise QuotaExceeded(name, limit, requested, retryable=False)


def check_slots(quota: Quota, unfinished: int) -> None:
    """`unfinished`: the tenant's jobs queued, submitted or running, before this one."""
    if quota.over_quota == "reject":
        if unfinished >= quota.max_concurrent_jobs:
            raise QuotaExceeded("max_concurrent_jobs", quota.max_concurrent_jobs, unfinished + 1, retryable=True)
    elif unfinished >= quota.max_concurrent_jobs + quota.max_queued_jobs:
        raise QuotaExceeded(
            "max_queued_jobs", quota.max_queued_jobs, unfinished + 1 - quota.max_concurrent_jobs, retryable=True
        )
