"""RecordedKubeApiStub: a recorded-response stand-in for the Kubernetes API server (tests only).

There is no Kubernetes cluster here. This HTTP server on 127.0.0.1 answers the handful of calls
the KubeRay backend makes (create/get/delete RayJob, list submitter pods, read their log) with the
responses in `recorded/kuberay/` (see the README there for where they come from), so that the real
`kubernetes` client and our backend run unchanged over real HTTP. It keeps the RayJobs it was sent,
and each GET of one advances it along the recorded status progression of its scenario.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from meow.testing.servers import LOOPBACK, free_port

RECORDED = Path(__file__).with_name("recorded") / "kuberay"
RAYJOB = re.compile(r"^/apis/ray\.io/v1/namespaces/(?P<ns>[^/]+)/rayjobs(?:/(?P<name>[^/?]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")
POD_LOG = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)/log$")


def recorded(file: str, **fill: str) -> str:
    text = (RECORDED / file).read_text()
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    return text


class RecordedKubeApiStub:
    def __init__(self, scenario: str = "succeeded"):
        self.scenario = scenario
        self.rayjobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._progress: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.port = free_port()
        self._server = ThreadingHTTPServer((LOOPBACK, self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> RecordedKubeApiStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, code: int, body: str, content_type: str = "application/json") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                stub.requests.append(("POST", path))
                match = RAYJOB.match(path)
                if not match or match["name"]:
                    return self._reply(404, "{}")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code, answer = stub.create(match["ns"], body)
                self._reply(code, answer)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                stub.requests.append(("GET", path))
                if (match := RAYJOB.match(path)) and match["name"]:
                    return self._reply(*stub.get(match["ns"], match["name"]))
                if match := PODS.match(path):
                    name = re.search(r"labelSelector=job-name%3D([^&]+)", query)
                    return self._reply(200, recorded("submitter-pods.json", name=name[1], namespace=match["ns"]))
                if match := POD_LOG.match(path):
                    job = match["pod"].rsplit("-", 1)[0]
                    return self._reply(
                        200, recorded("submitter-log.txt", name=job, namespace=match["ns"]), "text/plain"
                    )
                self._reply(404, "{}")

            def do_DELETE(self) -> None:
                path = self.path.split("?", 1)[0]
                stub.requests.append(("DELETE", path))
                match = RAYJOB.match(path)
                self._reply(*stub.delete(match["ns"], match["name"]))

        return Handler

    def create(self, namespace: str, body: dict[str, Any]) -> tuple[int, str]:
        name = body["metadata"]["name"]
        with self._lock:
            if (namespace, name) in self.rayjobs:
                return 409, recorded("status-already-exists.json", name=name)
            body["metadata"].update(
                uid=str(uuid.uuid4()), resourceVersion="1", generation=1, creationTimestamp="2026-11-22T03:00:00Z"
            )
            self.rayjobs[(namespace, name)] = body
            progression = recorded(f"rayjob-statuses-{self.scenario}.json", name=name, namespace=namespace)
            self._progress[(namespace, name)] = json.loads(progression)
            return 201, json.dumps(body)

    def get(self, namespace: str, name: str) -> tuple[int, str]:
        with self._lock:
            rayjob = self.rayjobs.get((namespace, name))
            if rayjob is None:
                return 404, recorded("status-not-found.json", name=name)
            statuses = self._progress[(namespace, name)]
            rayjob["status"] = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            return 200, json.dumps(rayjob)

    def delete(self, namespace: str, name: str) -> tuple[int, str]:
        with self._lock:
            rayjob = self.rayjobs.pop((namespace, name), None)
            if rayjob is None:
                return 404, recorded("status-not-found.json", name=name)
            return 200, recorded("status-deleted.json", name=name, uid=rayjob["metadata"]["uid"])
