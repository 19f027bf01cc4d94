"""Prometheus metrics of one app, in its own ``CollectorRegistry``.

A per-app registry (not prometheus-client's global one) lets several apps live in one
process (tests, in-process A/B studies) without "Duplicated timeseries" errors, and
keeps one app's numbers from leaking into another's.

Request metrics are labelled by the route *template* (``/admin/api/users/{email}/roles/
{role}``), never the raw path, so the number of series stays bounded; unmatched paths
share the label ``<unmatched>``. Pool, loop-lag and authz-cache figures are read at
scrape time by a custom collector, so they cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
COMMAND_BUCKETS = (0, 1, 2, 3, 4, 5, 8, 10, 15, 20, 30, 50, 100, 250)


def route_label(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    return UNMATCHED


class _RuntimeCollector(Collector):
    """Pool, loop-lag and authz-cache figures, read from the app at scrape time."""

    def __init__(self, state: Callable[[], Any]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        pool = getattr(state, "pool_monitor", None)
        if pool is not None:
            snap = pool.snapshot()
            for name in ("connections_created", "connections_closed", "checked_out",
                         "checkout_failed"):  # fmt: skip
                family = CounterMetricFamily(f"db_pool_{name}", f"Pool event count: {name}")
                family.add_metric([], getattr(snap, name))
                yield family
            in_use = GaugeMetricFamily("db_pool_in_use", "Connections checked out right now")
            in_use.add_metric([], snap.in_use)
            yield in_use
            wait = GaugeMetricFamily(
                "db_pool_checkout_wait_ms", "Recent check-out wait", labels=["quantile"]
            )
            wait.add_metric(["0.5"], snap.wait_p50_ms)
            wait.add_metric(["0.99"], snap.wait_p99_ms)
            wait.add_metric(["1"], snap.wait_max_ms)
            yield wait
        lag = getattr(state, "lag_monitor", None)
        if lag is not None:
            stats = lag.stats()
            family = GaugeMetricFamily(
                "event_loop_lag_ms", "Event-loop scheduling delay", labels=["quantile"]
            )
            family.add_metric(["0.5"], stats.p50_ms)
            family.add_metric(["0.99"], stats.p99_ms)
            family.add_metric(["1"], stats.max_ms)
            yield family
        authz = getattr(state, "authz", None)
        cache = getattr(authz, "cache", None)
        if cache is not None:
            family = CounterMetricFamily(
                "authz_cache_events", "Authorisation decision cache events", labels=["event"]
            )
            for event, value in cache.stats.as_dict().items():
                family.add_metric([event], value)
            yield family
            size = GaugeMetricFamily("authz_cache_entries", "Cached authorisation decisions")
            size.add_metric([], len(cache))
            yield size


class PlatformMetrics:
    """The metrics of one app; the request middleware calls :meth:`observe`."""

    def __init__(self, state: Callable[[], Any] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to the last response byte",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.db_commands = Histogram(
            "http_request_db_commands", "DB commands issued per request", ["method", "route"],
            buckets=COMMAND_BUCKETS, registry=self.registry,
        )  # fmt: skip
        if state is not None:
            self.registry.register(_RuntimeCollector(state))

    def observe(
        self, method: str, route: str, status: int, seconds: float, db_commands: int
    ) -> None:
        method = method if method in _METHODS else "OTHER"
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.latency.labels(method, route, code).observe(seconds)
        self.db_commands.labels(method, route).observe(db_commands)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST
