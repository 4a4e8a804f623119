"""Quota decisions for one submission (see `settings.Quota` for the limits and docs/platform.md).

- A job one of whose stages asks for more training workers, CPUs, GPUs or memory (training workers
  x their share, engine actors x theirs: `PipelineSpec.stage_resources`) than one job may have can
  never run: 422, naming the stage.
- Otherwise a tenant holds at most `max_concurrent_jobs` jobs submitted or running, plus (policy
  `queue`) `max_queued_jobs` waiting. A submission beyond that is refused with 429; under policy
  `reject` nothing waits, so a submission finding every slot taken is refused with 429 at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from meow.quantities import human
from meow_platform.policy import AcceptedSpec
from meow_platform.settings import Quota

QUOTAS = (
    "max_workers_per_job",
    "max_cpus_per_job",
    "max_gpus_per_job",
    "max_memory_per_job",
    "max_concurrent_jobs",
    "max_queued_jobs",
)


@dataclass
class QuotaExceeded(Exception):
    quota: str
    limit: float
    requested: float
    retryable: bool
    stage: str | None = None

    def __str__(self) -> str:
        what = "waiting for a running job to finish may help" if self.retryable else "this job can never run"
        needs = f"stage {self.stage} of this submission needs" if self.stage else "this submission needs"
        amount = human if self.quota == "max_memory_per_job" else "{:g}".format
        return f"quota {self.quota} is {amount(self.limit)}, {needs} {amount(self.requested)} ({what})"


def check_job_size(quota: Quota, spec: AcceptedSpec) -> None:
    """Every stage's training workers, and CPUs, GPUs and memory of its workers or engine actors
    (`PipelineSpec.stage_resources`), against the per-job limits."""
    for name, limit, resource, requested in (
        ("max_workers_per_job", quota.max_workers_per_job, "workers", spec.workers),
        ("max_cpus_per_job", quota.max_cpus_per_job, "cpus", spec.cpus),
        ("max_gpus_per_job", quota.max_gpus_per_job, "gpus", spec.gpus),
        ("max_memory_per_job", quota.max_memory_per_job, "memory", spec.memory),
    ):
        if requested > limit:
            stage = next((s for s, needs in spec.stages.items() if needs[resource] == requested), None)
            raise QuotaExceeded(name, limit, requested, retryable=False, stage=stage)


def check_slots(quota: Quota, unfinished: int) -> None:
    """`unfinished`: the tenant's jobs queued, submitted or running, before this one."""
    if quota.over_quota == "reject":
        if unfinished >= quota.max_concurrent_jobs:
            raise QuotaExceeded("max_concurrent_jobs", quota.max_concurrent_jobs, unfinished + 1, retryable=True)
    elif unfinished >= quota.max_concurrent_jobs + quota.max_queued_jobs:
        raise QuotaExceeded(
            "max_queued_jobs", quota.max_queued_jobs, unfinished + 1 - quota.max_concurrent_jobs, retryable=True
        )
