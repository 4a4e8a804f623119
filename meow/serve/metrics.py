"""The serve app's own Prometheus metrics, recorded by the ingress.

Through `ray.util.metrics`: Ray's metrics agent exports them on each node's metrics port
(the port Prometheus already scrapes for Ray and Serve's built-in `ray_serve_*` metrics), as
`ray_meow_serve_requests_total`, `ray_meow_serve_request_latency_ms_{bucket,sum,count}` and
`ray_meow_serve_tokens_total`. Labels are model names, routes and status codes only.
"""

from __future__ import annotations

# Milliseconds: from a cached health check to a long sampled answer on CPU.
LATENCY_BOUNDARIES_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000]


class ServeMetrics:
    def __init__(self):
        from ray.util.metrics import Counter, Histogram

        self.requests = Counter(
            "meow_serve_requests",
            description="HTTP requests answered, by model, route and status code.",
            tag_keys=("model", "route", "code"),
        )
        self.latency = Histogram(
            "meow_serve_request_latency_ms",
            description="Time from receiving a request to answering it, by model and route.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("model", "route"),
        )
        self.tokens = Counter(
            "meow_serve_tokens",
            description="Tokens processed, by model and kind (prompt or completion).",
            tag_keys=("model", "kind"),
        )

    def record(self, model: str, route: str, code: int, seconds: float, usage: dict | None) -> None:
        self.requests.inc(1, tags={"model": model, "route": route, "code": str(code)})
        self.latency.observe(seconds * 1000, tags={"model": model, "route": route})
        if usage:
            for kind in ("prompt", "completion"):
                if usage[f"{kind}_tokens"]:
                    self.tokens.inc(usage[f"{kind}_tokens"], tags={"model": model, "kind": kind})
