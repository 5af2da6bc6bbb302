"""Prometheus metrics through ``prometheus-client`` (one registry per coordinator, so label values
are escaped by the library and two servers in one process never share counters).

>>> m = Metrics(); m.rpc("Report", "OK", 0.002); b"edgefleet_rpc_total" in m.render()
True
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self._counters = {
            "edgefleet_rpc_total": Counter("edgefleet_rpc", "Calls by method and status code.",
                                           ("method", "code"), registry=r),
            "edgefleet_windows_ingested_total": Counter("edgefleet_windows_ingested",
                                                        "Telemetry windows durably stored (new, not replays).", registry=r),
            "edgefleet_windows_duplicate_total": Counter("edgefleet_windows_duplicate",
                                                         "Replayed windows acknowledged without change.", registry=r),
            "edgefleet_reports_rejected_total": Counter("edgefleet_reports_rejected",
                                                        "Reports refused by validation (nothing stored).", registry=r),
            "edgefleet_decisions_total": Counter("edgefleet_decisions", "Policy decisions by kind.", ("kind",),
                                                 registry=r),
            "edgefleet_auth_failures_total": Counter("edgefleet_auth_failures",
                                                     "Calls refused for a missing, wrong, expired or revoked token.",
                                                     registry=r),
            "edgefleet_cloud_rows_total": Counter("edgefleet_cloud_rows",
                                                  "Input rows answered by the cloud Predict fallback.", registry=r),
        }
        self._seconds = Histogram("edgefleet_rpc_seconds", "Call latency (acknowledgement latency for Report).",
                                  ("method",), buckets=_BUCKETS, registry=r)

    def inc(self, name: str, value: float = 1.0, **labels) -> None:
        counter = self._counters[name]
        (counter.labels(**labels) if labels else counter).inc(value)

    def rpc(self, method: str, code: str, seconds: float) -> None:
        self._counters["edgefleet_rpc_total"].labels(method=method, code=code).inc()
        self._seconds.labels(method=method).observe(seconds)

    def gauge(self, name: str, help_text: str, fn, *, cache_s: float = 0.0) -> None:
        """A gauge read at scrape time from ``fn() -> float``, at most once per ``cache_s`` seconds
        (a gauge that queries the database must not run a query per scrape)."""
        lock, cached = threading.Lock(), [float("nan"), float("-inf")]

        def read() -> float:
            with lock:
                if time.monotonic() - cached[1] >= cache_s:
                    try:
                        cached[0] = float(fn())
                    except Exception:  # a failing gauge reads NaN; the scrape still works
                        cached[0] = float("nan")
                    cached[1] = time.monotonic()
                return cached[0]
        Gauge(name, help_text, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
