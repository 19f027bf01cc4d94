"""A bounded TTL cache for authorisation decisions.

Key ``(subject, resource, action)``, value ``bool``. Unlike the reference (which scanned
all entries for the oldest one on every insert), eviction is O(1): an ``OrderedDict`` in
least-recently-used order, ``popitem(last=False)`` when full. Expired entries are dropped
when met. The whole cache is cleared on every policy or role change, so a revoked role
stops working at once in this process (other processes keep their cache until TTL: the
cache is per process, as documented in PLATFORM_SPEC 8.13).

Single-threaded by design (event loop only): no lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Key = tuple[str, str, str]


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    expired: int = 0
    evictions: int = 0
    clears: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class DecisionCache:
    __slots__ = ("_clock", "_entries", "max_size", "stats", "ttl")

    def __init__(
        self, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[bool, float]] = OrderedDict()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> bool | None:
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        value, expires = entry
        if self._clock() >= expires:
            del self._entries[key]
            self.stats.expired += 1
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return value

    def put(self, key: Key, value: bool) -> None:
        if self.ttl <= 0:
            return  # caching disabled
        if key in self._entries:
            self._entries.move_to_end(key)
        self._entries[key] = (value, self._clock() + self.ttl)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
            self.stats.evictions += 1

    def clear(self) -> None:
        self._entries.clear()
        self.stats.clears += 1
