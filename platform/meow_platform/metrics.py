"""Control-plane metrics, `meow_platform_*`, served at /metrics (prometheus-client).

Labels are tenants, job states, HTTP methods/route templates and quota names: bounded sets, and
never anything from a spec or a forget set. Queue and active-job gauges are read from the store at
scrape time, so they are right after a restart too.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from meow_platform.policy import SpecRejected
from meow_platform.quotas import QUOTAS
from meow_platform.store import ACTIVE, FINAL, QUEUED, Store

DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)


class StoreCollector(Collector):
    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self.store.counts_by_tenant_and_state()
        tenants = self.store.tenants()
        queued = GaugeMetricFamily("meow_platform_queue_length", "Jobs waiting for a slot", labels=["tenant"])
        active = GaugeMetricFamily(
            "meow_platform_active_jobs", "Jobs submitted to the backend or running", labels=["tenant"]
        )
        for tenant in tenants:
            queued.add_metric([tenant.name], counts.get((tenant.name, QUEUED), 0))
            active.add_metric([tenant.name], sum(counts.get((tenant.name, s), 0) for s in ACTIVE))
        enabled = GaugeMetricFamily("meow_platform_tenants", "Tenants, by whether they are enabled", labels=["enabled"])
        enabled.add_metric(["true"], sum(not t.disabled for t in tenants))
        enabled.add_metric(["false"], sum(t.disabled for t in tenants))
        yield from (queued, active, enabled)


class PlatformMetrics:
    def __init__(self, store: Store):
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(store))
        r = self.registry
        self.submitted = Counter("meow_platform_jobs_submitted", "Jobs accepted", ["tenant"], registry=r)
        self.rejected = Counter(
            "meow_platform_submissions_rejected", "Submissions refused, by reason", ["tenant", "reason"], registry=r
        )
        self.finished = Counter(
            "meow_platform_jobs_finished", "Jobs that reached a final state", ["tenant", "state"], registry=r
        )
        self.duration = Histogram(
            "meow_platform_job_duration_seconds",
            "From submission to the backend until a final state",
            ["tenant", "state"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "meow_platform_http_requests", "API requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "meow_platform_http_request_duration_seconds", "API request latency", ["method", "route"], registry=r
        )
        self.backend_errors = Counter(
            "meow_platform_backend_errors", "Backend calls that failed", ["backend", "operation"], registry=r
        )

    def track_tenant(self, tenant: str) -> None:
        """Create a tenant's series at zero, so that they exist (and rates work) from the start, also
        right after a restart of the control plane, before anything happened."""
        self.submitted.labels(tenant)
        for state in FINAL:
            self.finished.labels(tenant, state)
            self.duration.labels(tenant, state)
        for reason in (*SpecRejected.CODES, *QUOTAS, "rate_limited"):
            self.rejected.labels(tenant, reason)

    def render(self) -> bytes:
        return generate_latest(self.registry)
