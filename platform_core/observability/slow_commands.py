"""Slow-command logging and per-command metrics from command monitoring (report 10.1).

Timing a wrapper's ``find()`` measures nothing (cursors are lazy); the driver's command
events carry the real server round trip. The listener remembers each started command's
name, collection and filter by request id, and on completion records a latency histogram
and logs commands over a threshold with the filter *shape* (keys only, never values).
Knob ``slow_command_log``: ``off`` attaches nothing, ``on`` attaches this listener.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo import monitoring

from platform_core.observability.commands import collection_of

logger = logging.getLogger("platform_core.slow_commands")

_FILTER_FIELDS = {"find": "filter", "delete": "deletes", "update": "updates", "aggregate": "pipeline",
                  "count": "query", "distinct": "query", "findAndModify": "query"}  # fmt: skip


def filter_shape(value: Any, depth: int = 0) -> Any:
    """Keys of a filter with every value replaced by its type: safe to log."""
    if depth > 6:
        return "…"
    if isinstance(value, Mapping):
        return {k: filter_shape(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [filter_shape(v, depth + 1) for v in value[:3]]
    return type(value).__name__


class SlowCommandLog(monitoring.CommandListener):
    def __init__(
        self, threshold_ms: float = 100.0, registry: CollectorRegistry | None = None
    ) -> None:
        self.threshold_micros = threshold_ms * 1000
        self._pending: dict[tuple[int, Any], tuple[str, str, Any]] = {}
        self.slow_count = 0
        self.observed = 0
        self._histogram = Histogram(
            "db_command_duration_seconds", "MongoDB command round trip (command monitoring)",
            ["command"], registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )  # fmt: skip
        self._slow = Counter(
            "db_slow_commands", "Commands slower than the threshold", ["command"], registry=registry
        )

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        field = _FILTER_FIELDS.get(name)
        self._pending[(event.request_id, event.connection_id)] = (
            name, collection_of(name, event.command), event.command.get(field) if field else None,
        )  # fmt: skip

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event.request_id, event.connection_id, event.duration_micros, ok=True)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event.request_id, event.connection_id, event.duration_micros, ok=False)

    def _finish(self, request_id: int, connection: Any, micros: int, *, ok: bool) -> None:
        entry = self._pending.pop((request_id, connection), None)
        if entry is None:
            return
        name, coll, filt = entry
        self.observed += 1
        self._histogram.labels(name).observe(micros / 1e6)
        if micros >= self.threshold_micros:
            self.slow_count += 1
            self._slow.labels(name).inc()
            logger.warning(
                "slow command %s on %s took %.1f ms%s; filter shape %s",
                name, coll or "-", micros / 1000, "" if ok else " (failed)", filter_shape(filt),
            )  # fmt: skip
