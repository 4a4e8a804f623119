"""A Ray head on 127.0.0.1 for the local backend: `ray start --head --block`, stopped by its PID.

Every port is picked free on loopback (several clusters can share a host; Ray's defaults such as
6379, 8265 and 10001 would collide), the environment comes from `meow.cluster.local_ray_env()`
(loopback binding, token auth shared with this process), and this interpreter's directory leads
PATH so that `python` in job entrypoints is the one with meow installed. Never `ray stop`: it would
kill every Ray on the host.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from meow.cluster import LOOPBACK, local_ray_env
from meow.testing.servers import free_port, wait_for_port

PORT_FLAGS = (
    "port",
    "node-manager-port",
    "object-manager-port",
    "ray-client-server-port",
    "dashboard-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)


def ray_auth_headers() -> dict[str, str]:
    """The bearer header Ray's dashboard and Jobs API expect under token auth (none when it is off).

    Passed explicitly rather than left to Ray's client, which decides whether auth is on from
    settings it reads once, at import, possibly before `local_ray_env()` was applied here.
    """
    env = local_ray_env()
    if env["RAY_AUTH_MODE"] != "token":
        return {}
    token = os.environ.get("RAY_AUTH_TOKEN") or Path(env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    return {"Authorization": f"Bearer {token}"}


@dataclass
class LocalRayCluster:
    process: subprocess.Popen
    ports: dict[str, int]
    temp_dir: Path

    @property
    def dashboard_url(self) -> str:
        """The Ray Jobs API (and dashboard) address, for `JobSubmissionClient`."""
        return f"http://{LOOPBACK}:{self.ports['dashboard-port']}"

    @property
    def gcs_address(self) -> str:
        return f"{LOOPBACK}:{self.ports['port']}"

    @property
    def metrics_port(self) -> int:
        """Where the node's Ray metrics (`ray_*`, including `ray_meow_*` from jobs) are scraped."""
        return self.ports["metrics-export-port"]

    @classmethod
    def start(cls, num_cpus: int | None = None, timeout: float = 120.0) -> LocalRayCluster:
        env = {**os.environ, **local_ray_env()}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("OMP_NUM_THREADS", "1")
        ports = {flag: free_port() for flag in PORT_FLAGS}
        # Short: Ray puts Unix sockets under it, and those paths are limited to ~107 bytes.
        temp_dir = Path(tempfile.mkdtemp(prefix="meow-ray-", dir="/tmp"))
        command = [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--block",
            f"--node-ip-address={LOOPBACK}",
            f"--dashboard-host={LOOPBACK}",
            "--include-dashboard=true",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            *(f"--{flag}={port}" for flag, port in ports.items()),
            *([f"--num-cpus={num_cpus}"] if num_cpus else []),
        ]
        # Its own session: a Ctrl-C meant for the caller does not reach Ray; we stop it explicitly.
        process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
        cluster = cls(process, ports, temp_dir)
        try:
            wait_for_port(ports["dashboard-port"], timeout=timeout, process=process)
            cluster._wait_for_jobs_api(timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _wait_for_jobs_api(self, timeout: float) -> None:
        """The dashboard port opens before the job module answers; wait until it does."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.dashboard_url}/api/jobs/", headers=ray_auth_headers(), timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray Jobs API at {self.dashboard_url} not ready after {timeout} s")
            time.sleep(0.5)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to `ray start --block` drains the node and stops every process it started."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                # The process group is the one this cluster was started in (start_new_session).
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
