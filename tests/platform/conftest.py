"""Real servers for the control-plane tests: a local Ray cluster and the API under uvicorn, both on
127.0.0.1 and stopped by PID."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from control_plane import ControlPlane

from meow_platform.localray import LocalRayCluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    cluster = LocalRayCluster.start(num_cpus=2)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def start_plane(tmp_path_factory, ray_cluster) -> Iterator[Callable[..., ControlPlane]]:
    """Factory: a started control plane on its own store and artifact root, on the shared Ray."""
    started: list[ControlPlane] = []

    def make(**settings: str) -> ControlPlane:
        plane = ControlPlane(tmp_path_factory.mktemp("plane"), ray_cluster.dashboard_url, **settings)
        started.append(plane)
        return plane.start()

    yield make
    for plane in started:
        plane.stop()


@pytest.fixture(scope="module")
def plane(start_plane) -> ControlPlane:
    """One control plane per test module; tests keep apart by using their own tenants."""
    return start_plane()
