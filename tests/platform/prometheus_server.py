"""A real Prometheus (Debian's package) on 127.0.0.1 for tests, started by hand and stopped by PID.

Also `dashboard_queries`: every panel query of the Grafana dashboards in platform/grafana, with
Grafana's variables replaced by what a user looking at everything would get.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from meow.testing.servers import LOOPBACK, free_port, stop, wait_for_port

DASHBOARDS = Path(__file__).resolve().parents[2] / "platform" / "grafana"
VARIABLES = {"$__rate_interval": "30s", "$tenant": ".*", "$run": ".*"}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) for every panel target."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((path.name, panel["title"], expr))
    return found


class Prometheus:
    def __init__(self, directory: Path, scrape_configs: list[dict[str, Any]]):
        executable = shutil.which("prometheus")
        if executable is None:
            raise RuntimeError("prometheus is not installed: run scripts/system-deps.sh")
        self.directory = directory
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": scrape_configs}
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process = subprocess.Popen(
            [
                executable,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "prometheus.log", "w"),
        )
        wait_for_port(self.port, timeout=60, process=self.process)
        self.api = httpx.Client(base_url=f"http://{LOOPBACK}:{self.port}/api/v1", timeout=30)

    def stop(self) -> None:
        self.api.close()
        stop(self.process)

    def _get(self, path: str, **params: Any) -> Any:
        answer = self.api.get(path, params=params).raise_for_status().json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def targets(self) -> list[dict[str, Any]]:
        return self._get("/targets")["activeTargets"]

    def query_range(self, expr: str, start: float, end: float, step: str = "2s") -> list[dict[str, Any]]:
        return self._get("/query_range", query=expr, start=start, end=end, step=step)["result"]

    def series_names(self, start: float, end: float) -> set[str]:
        """Every metric name Prometheus scraped between `start` and `end`."""
        return set(self._get("/label/__name__/values", start=start, end=end))
