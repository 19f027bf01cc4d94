"""Connection-pool events (CMAP): check-out waits and connections created.

SecantusDB has no ``connPoolStats``; the driver's own pool events work with any server.
One :class:`PoolMonitor` per client: pool statistics belong to a client, not a process.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
from pymongo import monitoring


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    connections_created: int
    connections_closed: int
    checked_out: int
    checkout_failed: int
    in_use: int
    wait_p50_ms: float
    wait_p99_ms: float
    wait_max_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__slots__}


class PoolMonitor(monitoring.ConnectionPoolListener):
    """Counts pool events and keeps the most recent check-out wait durations.

    Events arrive from driver threads (motor) and the loop (pymongo async), hence the lock.
    """

    def __init__(self, keep_waits: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._waits: deque[float] = deque(maxlen=keep_waits)
        self.connections_created = 0
        self.connections_closed = 0
        self.checked_out = 0
        self.checked_in = 0
        self.checkout_failed = 0

    def reset(self) -> None:
        with self._lock:
            self._waits.clear()
            self.connections_created = self.connections_closed = 0
            self.checked_out = self.checked_in = self.checkout_failed = 0

    def snapshot(self) -> PoolSnapshot:
        with self._lock:
            waits = np.asarray(self._waits, dtype=float) * 1000.0
            counts = (
                self.connections_created,
                self.connections_closed,
                self.checked_out,
                self.checkout_failed,
                self.checked_out - self.checked_in,
            )
        if waits.size:
            p50, p99 = np.percentile(waits, [50, 99])
            peak = float(waits.max())
        else:
            p50 = p99 = peak = 0.0
        return PoolSnapshot(*counts, float(p50), float(p99), peak)

    # -- ConnectionPoolListener ------------------------------------------------------------
    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        with self._lock:
            self.connections_created += 1

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        with self._lock:
            self.connections_closed += 1

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        with self._lock:
            self.checked_out += 1
            if event.duration is not None:  # seconds spent waiting for the connection
                self._waits.append(event.duration)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        with self._lock:
            self.checked_in += 1

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        with self._lock:
            self.checkout_failed += 1

    # Events we do not need, implemented because the base class requires them.
    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None: ...
    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None: ...
    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None: ...
    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None: ...
    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None: ...
    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None: ...
