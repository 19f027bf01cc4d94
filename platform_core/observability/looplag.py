"""Event-loop lag: how late a heartbeat callback runs compared with when it was due.

Anything that blocks the loop (a synchronous ZIP build, bcrypt on the loop) shows up as
lag for every coroutine. The heartbeat sleeps ``interval`` seconds and records how much
later than that it woke. Note: asyncio's selector rounds timeouts to ~1 ms, so an idle
loop shows up to about 1 ms of lag; that is the floor of this instrument.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType

import numpy as np


@dataclass(frozen=True, slots=True)
class LagStats:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__slots__}


class LoopLagMonitor:
    """A heartbeat task on the running loop. Use ``async with`` or ``start()``/``stop()``."""

    def __init__(self, interval: float = 0.01, keep: int = 100_000) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self._lags: deque[float] = deque(maxlen=keep)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._beat(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reset(self) -> None:
        self._lags.clear()

    async def _beat(self) -> None:
        while True:
            due = time.perf_counter() + self.interval
            await asyncio.sleep(self.interval)
            self._lags.append(max(0.0, time.perf_counter() - due))

    def stats(self) -> LagStats:
        lags = np.asarray(self._lags, dtype=float) * 1000.0
        if not lags.size:
            return LagStats(0, 0.0, 0.0, 0.0)
        p50, p99 = np.percentile(lags, [50, 99])
        return LagStats(int(lags.size), float(p50), float(p99), float(lags.max()))

    async def __aenter__(self) -> LoopLagMonitor:
        self.start()
        await asyncio.sleep(0)  # let the first heartbeat get scheduled
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
