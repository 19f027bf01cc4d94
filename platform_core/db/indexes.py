"""The ``experiment_id`` index every scoped collection needs, and the guard that ensures it.

Every scoped read, update and delete filters on ``experiment_id``, so each experiment
collection needs ``{"experiment_id": 1}`` (named ``auto_experiment_id_asc``). Checking for
it costs one ``listIndexes`` round trip, and creating it one ``createIndexes``. How often
that happens is tuning knob 1.3/5.2 of the report (PLATFORM_SPEC 6.3), with two variants:

``"per_wrapper"`` (baseline)
    Every new :class:`~platform_core.db.scoped.ScopedCollection` checks, with no shared
    state. In the web path a scoped database is built per request, so this is one
    ``listIndexes`` per collection per request, and concurrent first uses of a cold
    collection send duplicate ``createIndexes``.

``"once_per_process"`` (default)
    A per-process map ``namespace -> state``. The first caller starts *one* check task;
    concurrent callers await that same task (single flight, no lock needed because the
    check-and-set happens without an ``await`` in between). A successful check is
    remembered for the life of the process. A *failed* check is not remembered: it is
    retried by the next caller after ``retry_delay`` seconds (the reference stored the
    failure and never retried).

The state is per process on purpose: other processes (workers, actors) do their own check
once, which costs one round trip each. If a collection or database is dropped while the
process runs, call :meth:`IndexGuard.forget` (or :meth:`IndexGuard.reset`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from pymongo.errors import OperationFailure

from platform_core.db.client import maybe_await

log = logging.getLogger(__name__)

SCOPE_FIELD = "experiment_id"
EXPERIMENT_ID_INDEX_NAME = "auto_experiment_id_asc"
EXPERIMENT_ID_INDEX_KEYS: tuple[tuple[str, int], ...] = ((SCOPE_FIELD, 1),)

GuardMode = Literal["per_wrapper", "once_per_process"]
GUARD_MODES: tuple[str, ...] = get_args(GuardMode)

# createIndexes answers these when an index with the same keys exists under another name
# or with other options: the keys are indexed, which is all the guard needs to know.
_ALREADY_INDEXED_CODES = frozenset({85, 86})  # IndexOptionsConflict, IndexKeySpecsConflict


def _same_keys(spec_key: Mapping[str, Any], keys: Sequence[tuple[str, int]]) -> bool:
    return list(spec_key.items()) == [(field, direction) for field, direction in keys]


async def index_present(collection: Any, name: str, keys: Sequence[tuple[str, int]]) -> bool:
    """True if ``collection`` has an index called ``name`` or one with exactly ``keys``.

    One ``listIndexes`` round trip. A missing collection has no indexes (both drivers
    turn the server's NamespaceNotFound into an empty cursor).
    """
    cursor = await maybe_await(collection.list_indexes())
    for spec in await cursor.to_list(None):
        if spec.get("name") == name or _same_keys(spec.get("key", {}), keys):
            return True
    return False


async def create_index_if_missing(
    collection: Any, keys: Sequence[tuple[str, int]], name: str
) -> bool:
    """Make sure the index exists; return True if this call created it.

    ``listIndexes`` first (cheap, and it does not block the server the way a build does),
    then ``createIndexes`` only when needed. A concurrent creator winning the race is not
    an error.
    """
    if await index_present(collection, name, keys):
        return False
    try:
        await collection.create_index(list(keys), name=name)
    except OperationFailure as exc:
        if exc.code in _ALREADY_INDEXED_CODES:
            return False
        raise
    return True


async def ensure_experiment_id_index(collection: Any) -> bool:
    """Ensure ``{"experiment_id": 1}`` (``auto_experiment_id_asc``); True if it was created."""
    return await create_index_if_missing(
        collection, EXPERIMENT_ID_INDEX_KEYS, EXPERIMENT_ID_INDEX_NAME
    )


@dataclass(slots=True)
class IndexGuardStats:
    """Counters for tests and studies (each ``check`` is one ``listIndexes``)."""

    checks: int = 0
    creates: int = 0
    failures: int = 0
    fast_path_hits: int = 0
    joined_in_flight: int = 0
    skipped_after_failure: int = 0
    background_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def validate_guard_mode(mode: str) -> GuardMode:
    if mode not in GUARD_MODES:
        raise ValueError(f"unknown index guard mode {mode!r}: choose one of {GUARD_MODES}")
    return mode  # type: ignore[return-value]


class IndexGuard:
    """Ensures the ``experiment_id`` index, as often as its ``mode`` says (see module doc).

    ``ensure`` never raises for a failed check (an index is an optimisation, not a reason
    to fail the caller's query): it logs, counts the failure and returns False. Only
    cancellation propagates. ``ensure_soon`` is the non-blocking form used by synchronous
    entry points such as ``find()``; its tasks are strongly referenced until they finish.
    """

    __slots__ = (
        "_background",
        "_clock",
        "_done",
        "_failed_until",
        "_in_flight",
        "_max_background",
        "_mode",
        "_retry_delay",
        "stats",
    )

    def __init__(
        self,
        mode: str = "once_per_process",
        *,
        retry_delay: float = 5.0,
        max_background_tasks: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mode: GuardMode = validate_guard_mode(mode)
        self._retry_delay = float(retry_delay)
        self._max_background = int(max_background_tasks)
        self._clock = clock
        self._done: set[str] = set()
        self._failed_until: dict[str, float] = {}
        self._in_flight: dict[str, asyncio.Task[bool]] = {}
        self._background: set[asyncio.Task[bool]] = set()
        self.stats = IndexGuardStats()

    @property
    def mode(self) -> GuardMode:
        return self._mode

    def __repr__(self) -> str:
        return f"IndexGuard(mode={self._mode!r}, checked={len(self._done)})"

    # -- state ---------------------------------------------------------------------------
    def is_done(self, namespace: str) -> bool:
        """True if this process has already confirmed the index on ``namespace``."""
        return namespace in self._done

    def forget(self, namespace: str) -> None:
        """Drop what is known about ``namespace`` (after a drop of the collection)."""
        self._done.discard(namespace)
        self._failed_until.pop(namespace, None)

    def reset(self) -> None:
        self._done.clear()
        self._failed_until.clear()

    def _retry_blocked(self, namespace: str) -> bool:
        until = self._failed_until.get(namespace)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._failed_until[namespace]
        return False

    # -- the check -----------------------------------------------------------------------
    async def _check(self, namespace: str, collection: Any) -> bool:
        self.stats.checks += 1
        try:
            created = await ensure_experiment_id_index(collection)
        except Exception as exc:  # any driver/server error: log, count, retry later
            self.stats.failures += 1
            self._failed_until[namespace] = self._clock() + self._retry_delay
            log.warning("experiment_id index check on %s failed: %r", namespace, exc)
            return False
        if created:
            self.stats.creates += 1
        if self._mode == "once_per_process":
            self._done.add(namespace)
        self._failed_until.pop(namespace, None)
        return True

    def _start(self, namespace: str, collection: Any) -> asyncio.Task[bool]:
        """The single in-flight check task for ``namespace`` on the running loop."""
        loop = asyncio.get_running_loop()
        task = self._in_flight.get(namespace)
        if task is not None and not task.done() and task.get_loop() is loop:
            self.stats.joined_in_flight += 1
            return task
        task = loop.create_task(self._check(namespace, collection))
        self._in_flight[namespace] = task

        def _finished(t: asyncio.Task[bool], ns: str = namespace) -> None:
            if self._in_flight.get(ns) is t:
                del self._in_flight[ns]

        task.add_done_callback(_finished)
        return task

    async def ensure(self, collection: Any) -> bool:
        """Make sure the index exists on ``collection``; True if it is known to exist."""
        namespace: str = collection.full_name
        if self._mode == "per_wrapper":
            if self._retry_blocked(namespace):
                self.stats.skipped_after_failure += 1
                return False
            return await self._check(namespace, collection)
        if namespace in self._done:
            self.stats.fast_path_hits += 1
            return True
        if self._retry_blocked(namespace):
            self.stats.skipped_after_failure += 1
            return False
        # shield: a cancelled caller must not cancel the check other callers wait for.
        return await asyncio.shield(self._start(namespace, collection))

    def ensure_soon(self, collection: Any) -> None:
        """Start the check in the background if one is needed (no-op without a loop)."""
        namespace: str = collection.full_name
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._mode == "once_per_process":
            if namespace in self._done:
                self.stats.fast_path_hits += 1
                return
            if self._retry_blocked(namespace):
                self.stats.skipped_after_failure += 1
                return
            self._start(namespace, collection)
            return
        if self._retry_blocked(namespace):
            self.stats.skipped_after_failure += 1
            return
        if len(self._background) >= self._max_background:
            self.stats.background_dropped += 1
            return
        task = loop.create_task(self._check(namespace, collection))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for every check this guard has started on the running loop."""
        loop = asyncio.get_running_loop()
        pending = [
            t
            for t in (*self._in_flight.values(), *self._background)
            if t.get_loop() is loop and not t.done()
        ]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


PROCESS_INDEX_GUARD = IndexGuard("once_per_process")
"""The guard scoped databases use unless they are given another one."""


def make_index_guard(mode: str, **options: Any) -> IndexGuard:
    """A fresh guard for a knob value (``"per_wrapper"`` or ``"once_per_process"``)."""
    return IndexGuard(mode, **options)
