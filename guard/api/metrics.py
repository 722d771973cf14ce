"""Prometheus metrics: requests, latency, entities found by type, access denials, analysis.

One registry per app (tests build several apps). With several worker processes (``guard serve``
runs one per core) a scrape reaches one of them, so each worker's figures alone would be a
fraction of the truth that changes from scrape to scrape. ``guard serve`` therefore runs them in
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``): counters and histograms
live in memory-mapped files that every worker writes and any worker sums at scrape time. The
analysis pools' gauges and counters (each worker has its own pool) are sampled into such files
every second by each worker, and the pool of the worker answering the scrape just before it: a
scrape shows every pool, the others at most a second old. A worker that stops cleanly removes its
live gauges; one that dies keeps its last values until ``guard serve`` restarts.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from guard.detection.executor import AnalysisService, AnalysisStatus

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: prometheus-client's own switch: a directory shared by every worker process.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: How often (seconds) a worker samples its analysis pool into the shared files.
SAMPLE_SECONDS = 1.0


def multiprocess_dir() -> str | None:
    """The shared metrics directory when multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class Metrics:
    """The counters and histograms guard exports at /metrics."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._sampler: _PoolSampler | None = None
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
        """Export the analysis pool's gauges and counters, read from it at each scrape.

        In multiprocess mode they are sampled into the shared files instead (every second, and
        just before this worker answers a scrape), so that a scrape shows every worker's pool.
        """
        if self._sampler is not None:
            self._sampler.stop()
        if multiprocess_dir() is None:
            self.registry.register(_AnalysisCollector(analysis.status))
            return
        self._sampler = _PoolSampler(analysis.status, self.registry)

    def count_denial(self, permission: str, reason: str) -> None:
        """Count a 401 or 403."""
        self.denials.labels(permission, reason).inc()

    def render(self) -> bytes:
        """The text exposition format (every worker's, summed, in multiprocess mode)."""
        if multiprocess_dir() is None:
            return bytes(generate_latest(self.registry))
        from prometheus_client import multiprocess  # noqa: PLC0415 - multiprocess mode only

        if self._sampler is not None:
            self._sampler.sample()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))

    def close(self) -> None:
        """Stop sampling; in multiprocess mode, drop this process's live gauges."""
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        directory = multiprocess_dir()
        if directory is not None:
            from prometheus_client import multiprocess  # noqa: PLC0415 - multiprocess mode only

            multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


class _PoolSampler:
    """Copies one worker's analysis pool status into multiprocess gauges and counters."""

    def __init__(self, status: Callable[[], AnalysisStatus], registry: CollectorRegistry) -> None:
        self._status = status
        self._lock = threading.Lock()
        self._gauges = {
            name: Gauge(name, doc, registry=registry, multiprocess_mode="livesum")
            for name, doc, _ in _GAUGES
        }
        self._counters = {name: Counter(name, doc, registry=registry) for name, doc, _ in _COUNTERS}
        self._seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="guard-metrics-sampler", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        """Write the pool's status now: gauges set, counters advanced by what is new."""
        status = asdict(self._status())
        with self._lock:
            for name, _, field in _GAUGES:
                self._gauges[name].set(status[field])
            for name, _, field in _COUNTERS:
                value = int(status[field])
                new = value - self._seen.get(name, 0)
                if new > 0:
                    self._counters[name].inc(new)
                self._seen[name] = max(value, self._seen.get(name, 0))

    def stop(self) -> None:
        """End the sampling thread."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                self.sample()
            except Exception:  # noqa: BLE001, S112 - a closed pool: metrics must never fail a worker
                continue


class _AnalysisCollector(Collector):
    """The analysis pool at scrape time: it keeps its own counts (one pool, many apps in tests)."""

    def __init__(self, status: Callable[[], AnalysisStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        """Gauges of now, counters since the pool started."""
        status = asdict(self._status())
        for name, documentation, field in _GAUGES:
            yield GaugeMetricFamily(name, documentation, value=status[field])
        for name, documentation, field in _COUNTERS:
            yield CounterMetricFamily(name, documentation, value=status[field])


#: The pool's gauges: metric name, help, AnalysisStatus field.
_GAUGES = (
    ("guard_analysis_workers", "Analysis workers alive with the model loaded.", "ready"),
    ("guard_analysis_running", "Analyses running in a worker now.", "busy"),
    ("guard_analysis_queued", "Requests waiting for an analysis worker.", "queued"),
)
#: The pool's counters (``_total`` is added on exposition): name, help, AnalysisStatus field.
_COUNTERS = (
    (
        "guard_analysis_refused_busy",
        "Requests refused with 503 (all workers busy, queue full or waited too long).",
        "refused_busy",
    ),
    (
        "guard_analysis_over_budget",
        "Analyses stopped (worker killed) past GUARD_ANALYSIS_TIMEOUT_SECONDS.",
        "over_budget",
    ),
    (
        "guard_analysis_cancelled",
        "Analyses stopped or dropped because the client disconnected.",
        "cancelled",
    ),
    (
        "guard_analysis_worker_deaths",
        "Analysis workers that ended on their own (crash, out of memory, killed).",
        "worker_deaths",
    ),
    (
        "guard_analysis_worker_restarts",
        "Analysis workers started to replace a stopped one.",
        "worker_restarts",
    ),
    (
        "guard_analysis_batches",
        "Analysis jobs that carried the texts of two or more queued requests.",
        "batches",
    ),
    (
        "guard_analysis_batched_requests",
        "Requests analysed in a batch with others.",
        "batched_requests",
    ),
    (
        "guard_analysis_batched_texts",
        "Texts analysed in a batch with other requests' texts.",
        "batched_texts",
    ),
    (
        "guard_analysis_batch_failures",
        "Batches that failed (a refused text, a worker death, the time budget).",
        "batch_failures",
    ),
    (
        "guard_analysis_batch_retries",
        "Requests run again on their own after their batch failed.",
        "batch_retries",
    ),
)
