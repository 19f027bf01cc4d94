"""Experiment-config cache: the ``config_cache`` knob (report 1.2/2.1, PLATFORM_SPEC 2.11, 6.2).

Every request to an experiment with an ``auth_policy`` needs its config, and so do the
admin routes. Four strategies, chosen by name:

``"none"`` (baseline, the reference before the report)
    every lookup is one ``find_one`` on ``experiments_config``.
``"request"``
    lookups within one request share one read (``request.state``), nothing across requests.
``"request_ttl"``
    plus a process-wide TTL + LRU (``EXPERIMENT_CONFIG_CACHE_TTL_SECONDS``/``_MAX_SIZE``).
    Fixes the reference's defects: invalidation is synchronous (no fire-and-forget task, so
    the next read after a save is fresh), ``None`` is never cached (an experiment created a
    moment later is not reported missing for 5 minutes), and every caller gets a deep copy
    (a caller that mutates its dict cannot poison the cache).
``"request_ttl_singleflight"`` (default)
    plus stampede protection: N concurrent misses of one key share ONE database read; the
    others wait for it (counted as ``coalesced``).

An invalidation that happens while a read is in flight bumps the slug's generation, so
the (possibly stale) result of that read is handed to its waiters but not stored.
The cache is per process: other workers keep their entry until it expires (spec 6.2).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from platform_core.db.slugs import validate_slug

CacheStrategy = Literal["none", "request", "request_ttl", "request_ttl_singleflight"]
CACHE_STRATEGIES: tuple[str, ...] = get_args(CacheStrategy)
CONFIG_COLLECTION = "experiments_config"
REQUEST_STATE_ATTR = "experiment_config_cache"

Key = tuple[str, tuple[tuple[str, Any], ...]]


@dataclass(slots=True)
class CacheCounters:
    hits: int = 0  # answered from the process-wide cache
    request_hits: int = 0  # answered from the request's own cache
    misses: int = 0  # lookups that needed the database (including coalesced ones)
    db_reads: int = 0  # find/find_one commands actually sent
    expiries: int = 0
    evictions: int = 0
    coalesced: int = 0  # concurrent misses that waited for another caller's read
    invalidations: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _projection_key(projection: Mapping[str, Any] | Iterable[str] | None) -> tuple:
    if projection is None:
        return ()
    if isinstance(projection, Mapping):
        return tuple(sorted((str(k), v) for k, v in projection.items()))
    return tuple(sorted((str(k), 1) for k in projection))


class ExperimentConfigCache:
    """Looks up ``experiments_config`` documents by slug, through the chosen strategy.

    ``collection`` is the (unscoped) ``experiments_config`` collection of either driver, or
    ``collection_getter`` a callable returning it (a driver collection object is itself
    "callable", so the two cannot share one parameter).
    ``clock`` is injectable so TTL tests need no sleeping.
    """

    def __init__(
        self,
        collection: Any = None,
        *,
        collection_getter: Callable[[], Any] | None = None,
        strategy: str = "request_ttl_singleflight",
        ttl_seconds: float = 300.0,
        max_size: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if strategy not in CACHE_STRATEGIES:
            raise ValueError(f"unknown config cache strategy {strategy!r}: {CACHE_STRATEGIES}")
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if (collection is None) == (collection_getter is None):
            raise ValueError("pass exactly one of collection and collection_getter")
        self._collection = collection
        self._collection_getter = collection_getter
        self.strategy: str = strategy
        self.ttl_seconds = float(ttl_seconds)
        self.max_size = int(max_size)
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[dict[str, Any], float]] = OrderedDict()
        self._inflight: dict[Key, asyncio.Future[dict[str, Any] | None]] = {}
        self._generation: dict[str, int] = {}
        self.counters = CacheCounters()

    # -- public API ------------------------------------------------------------------------
    @property
    def collection(self) -> Any:
        """The collection, resolved per use (the app's database exists only after startup)."""
        if self._collection_getter is not None:
            return self._collection_getter()
        return self._collection

    @property
    def uses_process_cache(self) -> bool:
        return self.strategy in ("request_ttl", "request_ttl_singleflight")

    async def get(
        self,
        slug: str,
        *,
        request: Any = None,
        projection: Mapping[str, Any] | Iterable[str] | None = None,
    ) -> dict[str, Any] | None:
        """The config of ``slug`` (a private copy) or ``None`` if there is none."""
        validate_slug(slug)
        key: Key = (slug, _projection_key(projection))
        req_cache = self._request_cache(request)
        if req_cache is not None and key in req_cache:
            self.counters.request_hits += 1
            return copy.deepcopy(req_cache[key])
        doc = await self._lookup(key, projection)
        if req_cache is not None and doc is not None:
            req_cache[key] = doc
        return copy.deepcopy(doc)

    async def get_many(self, slugs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Full configs of several slugs: cached ones from memory, the rest in ONE ``$in``."""
        wanted = [validate_slug(s) for s in dict.fromkeys(slugs)]
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for slug in wanted:
            doc = self._fresh((slug, ())) if self.uses_process_cache else None
            if doc is not None:
                self.counters.hits += 1
                found[slug] = copy.deepcopy(doc)
            else:
                missing.append(slug)
        for start in range(0, len(missing), 100):  # keep $in lists small (STACK_NOTES)
            chunk = missing[start : start + 100]
            self.counters.misses += len(chunk)
            self.counters.db_reads += 1
            async for doc in self.collection.find({"slug": {"$in": chunk}}):
                slug = doc.get("slug")
                if slug in chunk:
                    if self.uses_process_cache:
                        self._store((slug, ()), doc)
                    found[slug] = copy.deepcopy(doc)
        return found

    def invalidate(self, slug: str) -> int:
        """Drop every cached entry of ``slug`` now; returns how many were removed."""
        self.counters.invalidations += 1
        self._generation[slug] = self._generation.get(slug, 0) + 1
        keys = [k for k in self._entries if k[0] == slug]
        for key in keys:
            del self._entries[key]
        return len(keys)

    def clear(self) -> None:
        for slug in {k[0] for k in self._entries}:
            self._generation[slug] = self._generation.get(slug, 0) + 1
        self._entries.clear()

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        oldest = min((ts for _, ts in self._entries.values()), default=None)
        return {
            "strategy": self.strategy,
            "size": len(self._entries),
            "max_size": self.max_size,
            "ttl_seconds": self.ttl_seconds,
            "inflight": len(self._inflight),
            "oldest_age_seconds": None if oldest is None else now - oldest,
            **self.counters.as_dict(),
        }

    # -- internals -------------------------------------------------------------------------
    def _request_cache(self, request: Any) -> dict[Key, dict[str, Any]] | None:
        if request is None or self.strategy == "none":
            return None
        state = request.state
        cache = getattr(state, REQUEST_STATE_ATTR, None)
        if cache is None:
            cache = {}
            setattr(state, REQUEST_STATE_ATTR, cache)
        return cache

    def _fresh(self, key: Key) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        doc, stored_at = entry
        if self._clock() - stored_at > self.ttl_seconds:
            del self._entries[key]
            self.counters.expiries += 1
            return None
        self._entries.move_to_end(key)
        return doc

    def _store(self, key: Key, doc: dict[str, Any]) -> None:
        self._entries[key] = (copy.deepcopy(doc), self._clock())
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
            self.counters.evictions += 1

    async def _read(self, key: Key, projection: Any) -> dict[str, Any] | None:
        self.counters.db_reads += 1
        proj = dict(projection) if isinstance(projection, Mapping) else projection
        if proj is not None and not isinstance(proj, dict):
            proj = list(proj)
        return await self.collection.find_one({"slug": key[0]}, proj)

    async def _lookup(self, key: Key, projection: Any) -> dict[str, Any] | None:
        if not self.uses_process_cache:
            self.counters.misses += 1
            return await self._read(key, projection)
        doc = self._fresh(key)
        if doc is not None:
            self.counters.hits += 1
            return doc
        self.counters.misses += 1
        if self.strategy == "request_ttl_singleflight":
            pending = self._inflight.get(key)
            if pending is not None:
                self.counters.coalesced += 1
                return await asyncio.shield(pending)
        generation = self._generation.get(key[0], 0)
        future: asyncio.Future[dict[str, Any] | None] | None = None
        if self.strategy == "request_ttl_singleflight":
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
        try:
            doc = await self._read(key, projection)
        except BaseException as exc:
            if future is not None:
                self._inflight.pop(key, None)
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # mark retrieved: waiters (if any) re-raise it
            raise
        if doc is not None and self._generation.get(key[0], 0) == generation:
            self._store(key, doc)
        if future is not None:
            self._inflight.pop(key, None)
            future.set_result(doc)
        return doc
