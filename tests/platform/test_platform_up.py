"""`meow platform up`: the embedded default starts a Ray head on 127.0.0.1 that outlives it (a
restart re-attaches), one control plane per store, and `meow platform down` stops that head."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from meow.testing.servers import free_port, stop, wait_for_port
from meow_platform.localray import LocalRayCluster


def meow(env: dict[str, str], *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).with_name("meow")), *args], env=env, **kwargs)


def alive(processes: list[psutil.Process]) -> list[int]:
    return [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_platform_up_keeps_its_ray_across_restarts_and_refuses_a_second_one(tmp_path):
    port = free_port()
    env = {**os.environ, "MEOW_HOME": str(tmp_path / "home"), "MEOW_PLATFORM_RAY__NUM_CPUS": "1"}
    env.pop("MEOW_PLATFORM_RAY__ADDRESS", None)
    data = tmp_path / "home" / "platform"
    log = open(tmp_path / "up.log", "w")
    up = meow(env, "platform", "up", "--port", str(port), stdout=log, stderr=log)
    ray_processes: list[psutil.Process] = []
    try:
        wait_for_port(port, timeout=240, process=up)
        token = (data / "admin-token").read_text().strip()
        assert oct((data / "admin-token").stat().st_mode & 0o777) == "0o600"
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        assert api.get("/readyz").json() == {"status": "ok"}
        assert api.get("/v1/whoami").json()["scope"] == "admin"
        head = json.loads((data / "ray" / "head.json").read_text())
        ray_processes = [psutil.Process(head["pid"]), *psutil.Process(head["pid"]).children(recursive=True)]
        listening = [
            c
            for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in {p.pid for p in ray_processes}
        ]
        assert listening and all(c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1") for c in listening)

        second = meow(env, "platform", "up", "--port", str(free_port()), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1
        assert err.decode().strip().splitlines()[-1] == (
            f"Error: another control plane (pid {up.pid}) is serving the store {data / 'platform.db'}; stop it first"
        )

        up.send_signal(signal.SIGTERM)  # a rollout: the API goes, the head and its jobs stay
        assert up.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it shut down
        assert "Application shutdown complete" in (tmp_path / "up.log").read_text()
        assert len(alive(ray_processes)) == len(ray_processes), "SIGTERM left the Ray head running"

        up = meow(env, "platform", "up", "--port", str(port), stdout=log, stderr=log)
        wait_for_port(port, timeout=120, process=up)
        assert api.get("/readyz").json() == {"status": "ok"}
        assert json.loads((data / "ray" / "head.json").read_text()) == head, "re-attached, not restarted"
        assert "attached to the Ray head" in (tmp_path / "up.log").read_text()

        down = meow(env, "platform", "down", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = down.communicate(timeout=120)
        assert down.returncode == 1 and "another control plane" in err.decode(), "down waits for the control plane"
        stop(up, timeout=90)
        down = meow(env, "platform", "down", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = down.communicate(timeout=120)
        assert down.returncode == 0 and f"stopped the local Ray head (pid {head['pid']})" in err.decode()
        deadline = time.monotonic() + 30
        while alive(ray_processes) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not alive(ray_processes)
        assert not (data / "ray" / "head.json").exists()
    finally:
        stop(up, timeout=90)
        leftover = LocalRayCluster.attach(data / "ray")
        if leftover is not None:
            leftover.stop()
