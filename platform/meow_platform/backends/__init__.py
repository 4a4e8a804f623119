"""Where jobs run: `local` (Ray Jobs API on a local Ray) or `kuberay` (a RayJob per submission)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meow_platform.backends.base import (
    Backend,
    BackendRejected,
    BackendState,
    BackendStatus,
    BackendUnavailable,
    Launch,
)

if TYPE_CHECKING:  # the settings need the `platform` extra; a job's driver imports `base` without it
    from meow_platform.settings import Settings


def create_backend(settings: Settings) -> Backend:
    if settings.backend == "kuberay":
        from meow_platform.backends.kuberay import KubeRayBackend

        return KubeRayBackend(settings.kuberay)
    from meow_platform.backends.local import LocalBackend
    from meow_platform.localray import state_dir

    return LocalBackend(
        address=settings.ray.address, num_cpus=settings.ray.num_cpus, state_dir=state_dir(settings.data_dir)
    )


__all__ = [
    "Backend",
    "BackendRejected",
    "BackendState",
    "BackendStatus",
    "BackendUnavailable",
    "Launch",
    "create_backend",
]
