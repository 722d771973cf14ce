"""Prometheus metrics: requests, latency, entities found by type, access denials, analysis.

One registry per app (tests build several apps). With several uvicorn workers each worker
exposes its own counters; scrape each worker, or run one worker per container.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from guard.detection.executor import AnalysisService, AnalysisStatus

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The counters and histograms guard exports at /metrics."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "guard_requests_total",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "guard_request_duration_seconds",
            "HTTP request latency by route template.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.entities = Counter(
            "guard_entities_found_total",
            "PII entities found, by entity type.",
            ("entity_type",),
            registry=self.registry,
        )
        self.denials = Counter(
            "guard_access_denials_total",
            "Requests refused by authentication or authorization, by permission.",
            ("permission", "reason"),
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def count_entities(self, counts: Mapping[str, int]) -> None:
        """Add entities found, by type."""
        for entity_type, count in counts.items():
            self.entities.labels(entity_type).inc(count)

    def watch_analysis(self, analysis: AnalysisService) -> None:
        """Export the analysis pool's gauges and counters, read from it at each scrape."""
        self.registry.register(_AnalysisCollector(analysis.status))

    def count_denial(self, permission: str, reason: str) -> None:
        """Count a 401 or 403."""
        self.denials.labels(permission, reason).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return bytes(generate_latest(self.registry))


class _AnalysisCollector(Collector):
    """The analysis pool at scrape time: it keeps its own counts (one pool, many apps in tests)."""

    def __init__(self, status: Callable[[], AnalysisStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        """Gauges of now, counters since the pool started."""
        status = self._status()
        gauges = (
            (
                "guard_analysis_workers",
                "Analysis workers alive with the model loaded.",
                status.ready,
            ),
            ("guard_analysis_running", "Analyses running in a worker now.", status.busy),
            ("guard_analysis_queued", "Requests waiting for an analysis worker.", status.queued),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)
        counters = (
            (
                "guard_analysis_refused_busy",
                "Requests refused with 503 (all workers busy, queue full or waited too long).",
                status.refused_busy,
            ),
            (
                "guard_analysis_over_budget",
                "Analyses stopped (worker killed) past GUARD_ANALYSIS_TIMEOUT_SECONDS.",
                status.over_budget,
            ),
            (
                "guard_analysis_cancelled",
                "Analyses stopped or dropped because the client disconnected.",
                status.cancelled,
            ),
            (
                "guard_analysis_worker_deaths",
                "Analysis workers that ended on their own (crash, out of memory, killed).",
                status.worker_deaths,
            ),
            (
                "guard_analysis_worker_restarts",
                "Analysis workers started to replace a stopped one.",
                status.worker_restarts,
            ),
        )
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value=value)
