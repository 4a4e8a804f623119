"""Start or join Ray for local runs: everything on 127.0.0.1, token auth, clean shutdown.

Ray binds to the machine's routable address by default; with the cluster flag below it uses the
loopback address for every server it starts. Ray 2.60 also enables token auth for local clusters;
we keep it on, with a token under MEOW_HOME that child processes (workers, jobs, a later
`ray.init(address=...)`) find through the environment.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from meow.models.cache import meow_home
from meow.net import LOOPBACK, free_port

log = logging.getLogger(__name__)

# Whether the Ray this process uses is one `ray_session` started: a single node of fixed size, where
# a memory reservation larger than the node can never be met (`check_memory`).
_started_locally = False


def local_ray_env() -> dict[str, str]:
    """Environment that makes Ray processes bind loopback and share one auth token."""
    token_path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or meow_home() / "ray" / "auth_token")
    if not os.environ.get("RAY_AUTH_TOKEN") and not token_path.is_file():
        token_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    env = {
        # Not a Windows/OSX switch in practice: off means "single-node, loopback only".
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if not os.environ.get("RAY_AUTH_TOKEN"):
        env["RAY_AUTH_TOKEN_PATH"] = str(token_path)
    return env


@contextmanager
def ray_session(
    num_cpus: int | None = None, address: str | None = None, metrics_export_port: int | None = None
) -> Iterator[None]:
    """Use the Ray already initialised, join `address` (or RAY_ADDRESS), or start a local one.

    Only a Ray this call started is shut down on exit.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    else:
        # The dashboard serves the state API, which Ray Train's placement-group cleaner polls
        # (without it every poll logs a warning and a dead controller's group is never freed).
        # Its address goes to this session's workers only: left to find "the" Ray on its own, the
        # state API gives up when the host runs more than one; set in this process's environment,
        # it would also redirect every Jobs/state client the process (or its children) creates.
        dashboard_port = free_port()
        _set_ray_env(local_ray_env())
        extra = {"_metrics_export_port": metrics_export_port} if metrics_export_port else {}
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=True,
            dashboard_host=LOOPBACK,
            dashboard_port=dashboard_port,
            runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://{LOOPBACK}:{dashboard_port}"}},
            _node_ip_address=LOOPBACK,
            logging_level=logging.WARNING,
            **extra,
        )
        log.info("started local Ray on %s with %s CPUs", LOOPBACK, ray.cluster_resources().get("CPU"))
    global _started_locally
    _started_locally = not address
    try:
        yield
    finally:
        _started_locally = False
        ray.shutdown()


class InsufficientMemory(RuntimeError):
    """The local Ray has less memory than a job's workers or actors reserve."""


def check_memory(processes: int, each: int, setting: str, unreserved: bool = False) -> None:
    """Refuse `processes` Ray workers or actors reserving `each` bytes of memory at once when the
    Ray this process started has less memory in all (`unreserved`: less than its processes have not
    reserved yet, for one started while earlier ones hold theirs): Ray would wait for it forever. A
    joined cluster may free memory or grow, so there Ray queues them. `setting` names the spec key."""
    import ray

    from meow.quantities import human

    if not _started_locally:
        return
    resources = ray.available_resources() if unreserved else ray.cluster_resources()
    total = resources.get("memory", 0)
    if processes * each > total:
        has = (
            f"has unreserved ({human(total)})"
            if unreserved
            else f"has ({human(total)}, what was free when it started less its object store)"
        )
        raise InsufficientMemory(
            f"{processes} x {setting} {human(each)} is more memory than the local Ray {has}: lower {setting} or free memory"
        )


def _set_ray_env(env: dict[str, str]) -> None:
    """Set Ray's environment in this process, also when `ray` was imported before (Ray reads it once,
    at import: `meow.ray_internals`)."""
    from meow.ray_internals import reread_settings

    os.environ.update(env)
    reread_settings(enable_cluster=env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "1")
