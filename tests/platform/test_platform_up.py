"""`meow platform up`: the embedded default starts its own Ray on 127.0.0.1 and stops it on exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from meow.testing.servers import free_port, stop, wait_for_port


def test_platform_up_serves_and_takes_its_ray_down_with_it(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MEOW_HOME": str(tmp_path / "home"),
        "MEOW_PLATFORM_RAY__NUM_CPUS": "1",
    }
    env.pop("MEOW_PLATFORM_RAY__ADDRESS", None)
    meow = Path(sys.executable).with_name("meow")
    with open(tmp_path / "up.log", "w") as log:
        process = subprocess.Popen([str(meow), "platform", "up", "--port", str(port)], env=env, stdout=log, stderr=log)
    try:
        wait_for_port(port, timeout=240, process=process)
        token = (tmp_path / "home" / "platform" / "admin-token").read_text().strip()
        assert oct((tmp_path / "home" / "platform" / "admin-token").stat().st_mode & 0o777) == "0o600"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as api:
            assert api.get("/readyz").json() == {"status": "ok"}
            assert api.get("/v1/whoami").json()["scope"] == "admin"
        ray_processes = [
            p for p in psutil.Process(process.pid).children(recursive=True) if "ray" in " ".join(p.cmdline())
        ]
        assert ray_processes, "the control plane started a Ray of its own"
        listening = [
            c
            for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in {p.pid for p in ray_processes}
        ]
        assert listening and all(c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1") for c in listening)
    finally:
        stop(process, timeout=90)
    deadline = time.monotonic() + 30
    while (
        any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in ray_processes)
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert not [p.pid for p in ray_processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
