"""A control plane in a subprocess (`python -m meow_platform serve`) for tests, and polling helpers."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from meow.testing.servers import free_port, stop, wait_for_port

FINAL = ("succeeded", "failed", "cancelled")


class ControlPlane:
    """`python -m meow_platform serve` in a subprocess; restartable on the same store."""

    def __init__(self, data_dir: Path, ray_address: str | None, **settings: str):
        self.data_dir = data_dir
        self.admin_token = secrets.token_urlsafe(24)
        self.env = {
            **os.environ,
            "MEOW_PLATFORM_DATA_DIR": str(data_dir),
            "MEOW_PLATFORM_ADMIN_TOKEN": self.admin_token,
            "MEOW_PLATFORM_POLL_INTERVAL_S": "0.5",
            **({"MEOW_PLATFORM_RAY__ADDRESS": ray_address} if ray_address else {}),
            **{f"MEOW_PLATFORM_{k.upper()}": v for k, v in settings.items()},
        }
        self.log_path = data_dir / "control-plane.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ControlPlane:
        """Start (or restart, on the same port and store) the control plane; `timeout` covers starting
        a Ray head of its own."""
        self.port = self.port or free_port()
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "meow_platform", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=timeout, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, timeout=30)

    def kill(self) -> None:
        """A crash: no shutdown handler runs."""
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text()

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.client(self.admin_token)

    def tenant(self, name: str, **fields) -> tuple[httpx.Client, str]:
        """Create tenant `name`; returns a client with a fresh token of it, and the token."""
        with self.admin() as admin:
            admin.post("/v1/tenants", json={"name": name, **fields}).raise_for_status()
            token = admin.post(f"/v1/tenants/{name}/tokens", json={"description": "tests"}).json()["token"]
        return self.client(token), token


def wait_for_state(client: httpx.Client, job_id: str, states=FINAL, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
        time.sleep(0.5)
