"""A Ray head on 127.0.0.1 for the local backend: `ray start --head --block`, stopped by its PID.

Every port is picked free on loopback (several clusters can share a host; Ray's defaults such as
6379, 8265 and 10001 would collide), the environment comes from `meow.cluster.local_ray_env()`
(loopback binding, token auth shared with this process), and this interpreter's directory leads
PATH so that `python` in job entrypoints is the one with meow installed. Never `ray stop`: it would
kill every Ray on the host.

The control plane's head is *persistent* (`start_or_attach`): it runs in its own session, records
its PID, ports and temp dir in `<state dir>/head.json`, and outlives the process that started it,
so a restarted control plane re-attaches to it and to the jobs it runs (as Ray Jobs are designed
for). Only `stop()` (`meow platform down`) ends it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from meow.cluster import local_ray_env
from meow.net import LOOPBACK, free_port

log = logging.getLogger("meow_platform.localray")

START_LOG = "ray-start.log"
# What a persistent head records about itself, and the lock held while one is started or attached.
HEAD_FILE = "head.json"
HEAD_LOCK = "head.lock"
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


def state_dir(data_dir: Path) -> Path:
    """Where the control plane's persistent head records itself (`head.json`), under its data dir."""
    return data_dir / "ray"


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
    # `ray start --block`: its own session leader, so also the process group of everything it starts.
    pid: int
    ports: dict[str, int]
    temp_dir: Path
    # Set when this process started the head (not when it attached to a recorded one).
    process: subprocess.Popen | None = None
    # Where a persistent head records itself; None: a head that lives only as long as its owner.
    state_dir: Path | None = None

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
    def start(
        cls, num_cpus: int | None = None, timeout: float = 180.0, attempts: int = 3, state_dir: Path | None = None
    ) -> LocalRayCluster:
        """Start a head node; retried because Ray gives a node only 30 s to register with its GCS,
        which an overloaded machine can miss (`ray start` then exits with "timed out during startup").
        With `state_dir`, the head is recorded there as soon as it is launched: a caller killed while
        it starts leaves a head the next one finds, not an orphan."""
        for attempt in range(1, attempts + 1):
            cluster = cls._launch(num_cpus)
            cluster.state_dir = state_dir
            try:
                if state_dir is not None:
                    cluster._record()
                cluster._wait_until_ready(timeout)
                return cluster
            except BaseException:
                cluster.stop()
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def start_or_attach(cls, state_dir: Path, num_cpus: int | None = None) -> LocalRayCluster:
        """The head recorded in `state_dir` if it still runs, else a new one recorded there.

        A recorded head whose process is gone (a reboot, a crash) is swept (what is left of its
        process group, its temp dir) and replaced: the jobs it ran are gone with it.
        """
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(state_dir / HEAD_LOCK):
            cluster = cls.attach(state_dir)
            if cluster is not None:
                log.info("attached to the Ray head %s (pid %s)", cluster.dashboard_url, cluster.pid)
                return cluster
            cluster = cls.start(num_cpus=num_cpus, state_dir=state_dir)
            log.info("started a Ray head %s (pid %s), recorded in %s", cluster.dashboard_url, cluster.pid, state_dir)
            return cluster

    @classmethod
    def attach(cls, state_dir: Path) -> LocalRayCluster | None:
        """The head recorded in `state_dir` while its `ray start` process still runs; None if there is
        none (a stale record is removed and what is left of its cluster swept)."""
        try:
            record = json.loads((state_dir / HEAD_FILE).read_text())
        except FileNotFoundError:
            return None
        cluster = cls(record["pid"], record["ports"], Path(record["temp_dir"]), state_dir=state_dir)
        if cluster.alive():
            return cluster
        log.warning("the recorded Ray head (pid %s) is gone; its jobs are lost", cluster.pid)
        cluster._sweep()
        return None

    def alive(self) -> bool:
        """The `ray start --block` of this head still runs (not merely some process with its PID)."""
        if self.process is not None:
            return self.process.poll() is None
        try:
            process = psutil.Process(self.pid)
            command = process.cmdline()
            return process.status() != psutil.STATUS_ZOMBIE and f"--temp-dir={self.temp_dir}" in command
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def _record(self) -> None:
        record = {"pid": self.pid, "ports": self.ports, "temp_dir": str(self.temp_dir), "dashboard": self.dashboard_url}
        path = self.state_dir / HEAD_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)

    @classmethod
    def _launch(cls, num_cpus: int | None) -> LocalRayCluster:
        # Not the control plane's own settings (admin token, database URL): jobs inherit this.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEOW_PLATFORM_")}
        env.update(local_ray_env())
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
            process = subprocess.Popen(
                command,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return cls(process.pid, ports, temp_dir, process=process)

    def _wait_until_ready(self, timeout: float) -> None:
        """Ready: `ray start` reported the node up (it registered with the GCS) and the Jobs API answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = (self.temp_dir / START_LOG).read_text()[-2000:]
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{tail}")
            if STARTED in (self.temp_dir / START_LOG).read_text() and self._jobs_api_answers():
                return
            time.sleep(0.5)
        raise TimeoutError(f"Ray head on {self.gcs_address} not ready after {timeout} s")

    def _jobs_api_answers(self) -> bool:
        try:
            return not httpx.get(f"{self.dashboard_url}/api/jobs/", headers=ray_auth_headers(), timeout=5).is_error
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to `ray start --block` drains the node and stops every process it started; then
        whatever is left of the process group this cluster was started in is killed (e.g. after a
        `ray start` that failed halfway and left its GCS behind)."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
        self._sweep()

    def _sweep(self) -> None:
        """Kill what is left of the head's process group, reap it, remove its temp dir and record.

        The process group outlives its leader while a member runs, and the kernel does not hand
        out its id as a PID meanwhile: the group's id (the leader's PID) names only this cluster.
        """
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process is not None:
            self.process.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        if self.state_dir is not None:
            (self.state_dir / HEAD_FILE).unlink(missing_ok=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (waits): one process at a time starts or attaches to a head."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
