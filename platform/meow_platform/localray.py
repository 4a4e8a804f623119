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

from meow.cluster import local_ray_env
from meow.net import LOOPBACK, free_port

START_LOG = "ray-start.log"
# What `ray start` prints once the node has registered with the GCS.
STARTED = "Ray runtime started"
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
    def start(cls, num_cpus: int | None = None, timeout: float = 180.0, attempts: int = 3) -> LocalRayCluster:
        """Start a head node; retried because Ray gives a node only 30 s to register with its GCS,
        which an overloaded machine can miss (`ray start` then exits with "timed out during startup")."""
        for attempt in range(1, attempts + 1):
            cluster = cls._launch(num_cpus)
            try:
                cluster._wait_until_ready(timeout)
                return cluster
            except BaseException:
                cluster.stop()
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _launch(cls, num_cpus: int | None) -> LocalRayCluster:
        env = {**os.environ, **local_ray_env()}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("OMP_NUM_THREADS", "1")
        # On stop, the node waits this long for running work to drain (Ray's default: 30 s). Jobs on
        # a cluster being stopped are lost either way; the platform's store keeps their record.
        env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "5")
        # Processes push their metrics to the node every interval (Ray's default: 10 s); a stage's
        # last counts, recorded just before its driver exits, would otherwise never be exported.
        env.setdefault("RAY_metrics_report_interval_ms", "1000")
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
        with open(temp_dir / START_LOG, "w") as log:
            # Its own session: a Ctrl-C meant for the caller does not reach Ray; we stop it explicitly.
            process = subprocess.Popen(command, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        return cls(process, ports, temp_dir)

    def _wait_until_ready(self, timeout: float) -> None:
        """Ready: `ray start` reported the node up (it registered with the GCS) and the Jobs API answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.temp_dir / START_LOG).read_text()[-2000:]
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{tail}")
            if STARTED in (self.temp_dir / START_LOG).read_text() and self._jobs_api_answers():
                return
            time.sleep(0.5)
        raise TimeoutError(f"Ray head on {self.gcs_address} not ready after {timeout} s")

    def _jobs_api_answers(self) -> bool:
        try:
            return requests.get(f"{self.dashboard_url}/api/jobs/", headers=ray_auth_headers(), timeout=5).ok
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to `ray start --block` drains the node and stops every process it started; then
        whatever is left of the process group this cluster was started in is killed (e.g. after a
        `ray start` that failed halfway and left its GCS behind)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
