"""Automatic indexes for query shapes that repeat (PLATFORM_SPEC 2.5, with 6.4/6.12 fixed).

The manager watches the *shape* of queries (field names and operators, never values).
When the same shape has been seen ``threshold`` times it builds a compound index for it.

What differs from the reference, and why:

* **Deterministic field order.** The reference de-duplicated fields through a ``set``, so
  the same filter produced differently named compound indexes in different processes
  (duplicate builds). Here the order is fixed by the ESR rule: equality fields (in the
  filter's order), then sort fields (in sort order), then range fields; duplicates keep
  their first position; at most ``max_fields`` fields.
* **Bounded pattern memory** (report 1.4, a tuning knob): ``counts="lru"`` (default) keeps
  at most ``max_patterns`` shapes in least-recently-used order; ``counts="unbounded"`` is
  the reference's plain dict, kept as the baseline.
* **Counting is synchronous; building is a background task.** ``observe`` costs a dict
  update. Only a threshold hit spawns a task, which is strongly referenced in a bounded set
  (spec 6.12), and nothing in the query path awaits an index build (spec 6.4a).
* **Failures are retried.** A failed build is remembered for ``retry_delay`` seconds, then
  the next hit of the shape tries again (the reference cached failures forever).
* **Optional prefix fields.** Scoped collections pass ``prefix_fields=("experiment_id",)``:
  every scoped query carries an ``experiment_id`` condition, so it leads the index
  (spec 6.4d). Shapes with no field of their own still create nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from platform_core.db.indexes import create_index_if_missing

log = logging.getLogger(__name__)

CountsMode = Literal["lru", "unbounded"]
COUNTS_MODES: tuple[str, ...] = get_args(CountsMode)
# Knob autoindex_order (spec 6.4b): "esr" (default) or the reference's "set_order".
OrderMode = Literal["esr", "set_order"]
ORDER_MODES: tuple[str, ...] = get_args(OrderMode)
# Knob index_tasks (report 5.1, spec 6.12): "bounded" counts synchronously and spawns only
# at the threshold (default); "unbounded" spawns a task for every observed query, as the
# reference did (kept strongly referenced here, so the baseline loses no work).
SpawnMode = Literal["bounded", "unbounded"]
SPAWN_MODES: tuple[str, ...] = get_args(SpawnMode)

EQUALITY_OPERATORS = frozenset({"$eq"})
RANGE_OPERATORS = frozenset({"$gt", "$gte", "$lt", "$lte", "$ne", "$in", "$nin", "$exists"})
DEFAULT_THRESHOLD = 3
DEFAULT_MAX_FIELDS = 4
DEFAULT_MAX_PATTERNS = 1000
DEFAULT_MAX_TASKS = 5


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """The index a query shape asks for: ordered ``(field, direction)`` keys and a name."""

    keys: tuple[tuple[str, int], ...]
    name: str


def _filter_fields(flt: Mapping[str, Any], equality: list[str], ranges: list[str]) -> None:
    for key, value in flt.items():
        if not isinstance(key, str) or not key:
            continue
        if key == "$and" and isinstance(value, list | tuple):
            for clause in value:
                if isinstance(clause, Mapping):
                    _filter_fields(clause, equality, ranges)
            continue
        if key.startswith("$"):
            continue  # $or, $nor, $expr, $text...: no single index serves them
        if isinstance(value, Mapping) and any(
            isinstance(k, str) and k.startswith("$") for k in value
        ):
            operators = set(value)
            if operators & EQUALITY_OPERATORS:
                equality.append(key)
            elif operators & RANGE_OPERATORS:
                ranges.append(key)
            continue  # other operators ($regex, $elemMatch, $size...) are not indexed here
        equality.append(key)  # a plain value or an exact sub-document


def _sort_fields(sort: Any) -> list[tuple[str, int]]:
    if sort is None:
        return []
    if isinstance(sort, str):
        return [(sort, 1)]
    items: Iterable[Any] = sort.items() if isinstance(sort, Mapping) else sort
    out: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            field, direction = item, 1
        elif isinstance(item, list | tuple) and len(item) == 2:
            field, direction = item
        else:
            continue
        if (
            isinstance(field, str)
            and field
            and not field.startswith("$")
            and type(direction) is int
            and direction in (1, -1)
        ):
            out.append((field, direction))  # {"$meta": ...} and "text" are not btree keys
    return out


def plan_index(
    flt: Mapping[str, Any] | None,
    sort: Any = None,
    *,
    max_fields: int = DEFAULT_MAX_FIELDS,
    prefix_fields: Sequence[str] = (),
    order: OrderMode = "esr",
) -> IndexPlan | None:
    """The index for a filter/sort shape, or ``None`` if the shape has no indexable field.

    With ``order="esr"`` it is pure and deterministic: the same arguments give the same
    plan in every process. ``order="set_order"`` reproduces the reference (filter fields
    de-duplicated through a ``set``, so their order follows the string hash seed of the
    process), kept only as the baseline of knob ``autoindex_order``.
    """
    equality: list[str] = []
    ranges: list[str] = []
    if flt:
        _filter_fields(flt, equality, ranges)
    ordered: list[tuple[str, int]] = [(f, 1) for f in prefix_fields]
    if order == "set_order":
        ordered += [(f, 1) for f in set(equality + ranges)]
        ordered += _sort_fields(sort)
    else:
        ordered += [(f, 1) for f in equality]
        ordered += _sort_fields(sort)
        ordered += [(f, 1) for f in ranges]
    seen: set[str] = set()
    keys: list[tuple[str, int]] = []
    for field, direction in ordered:
        if field not in seen:
            seen.add(field)
            keys.append((field, direction))
    keys = keys[:max_fields]
    own = [f for f, _ in keys if f not in prefix_fields]
    if not own or [f for f, _ in keys] == ["_id"]:
        return None
    name = "auto_" + "_".join(f"{f}_{'asc' if d == 1 else 'desc'}" for f, d in keys)
    return IndexPlan(tuple(keys), name)


@dataclass(slots=True)
class AutoIndexStats:
    observations: int = 0
    patterns_tracked: int = 0
    evictions: int = 0
    threshold_hits: int = 0
    tasks_spawned: int = 0
    tasks_dropped: int = 0
    indexes_created: int = 0
    indexes_found: int = 0
    build_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class AutoIndexManager:
    """Counts query shapes on one collection and builds an index for shapes that repeat.

    ``collection`` is the driver collection the indexes are built on (never handed out).
    Use :meth:`observe` from the query path (synchronous, returns the spawned task if a
    build started) or :meth:`ensure_index_for_query` where waiting for the build is wanted.
    """

    __slots__ = (
        "_clock",
        "_collection",
        "_counts",
        "_counts_mode",
        "_created",
        "_failed_until",
        "_in_flight",
        "_lock",
        "_max_fields",
        "_max_patterns",
        "_max_tasks",
        "_order",
        "_prefix_fields",
        "_retry_delay",
        "_spawn",
        "_tasks",
        "_threshold",
        "stats",
    )

    def __init__(
        self,
        collection: Any,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        max_fields: int = DEFAULT_MAX_FIELDS,
        counts: str = "lru",
        max_patterns: int = DEFAULT_MAX_PATTERNS,
        prefix_fields: Sequence[str] = (),
        max_tasks: int = DEFAULT_MAX_TASKS,
        retry_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        order: str = "esr",
        spawn: str = "bounded",
    ) -> None:
        if counts not in COUNTS_MODES:
            raise ValueError(f"unknown counts mode {counts!r}: choose one of {COUNTS_MODES}")
        if order not in ORDER_MODES:
            raise ValueError(f"unknown order mode {order!r}: choose one of {ORDER_MODES}")
        if spawn not in SPAWN_MODES:
            raise ValueError(f"unknown spawn mode {spawn!r}: choose one of {SPAWN_MODES}")
        self._order: OrderMode = order  # type: ignore[assignment]
        self._spawn: SpawnMode = spawn  # type: ignore[assignment]
        if threshold < 1 or max_fields < 1 or max_patterns < 1 or max_tasks < 1:
            raise ValueError("threshold, max_fields, max_patterns and max_tasks must be >= 1")
        self._collection = collection
        self._threshold = threshold
        self._max_fields = max_fields
        self._counts_mode: CountsMode = counts  # type: ignore[assignment]
        self._max_patterns = max_patterns
        self._counts: dict[str, int] = OrderedDict() if counts == "lru" else {}
        self._prefix_fields = tuple(prefix_fields)
        self._max_tasks = max_tasks
        self._retry_delay = float(retry_delay)
        self._clock = clock
        self._created: set[str] = set()
        self._failed_until: dict[str, float] = {}
        self._in_flight: dict[str, asyncio.Task[bool]] = {}
        self._tasks: set[asyncio.Task[bool]] = set()
        self._lock: asyncio.Lock | None = None
        self.stats = AutoIndexStats()

    @property
    def counts_mode(self) -> CountsMode:
        return self._counts_mode

    @property
    def order_mode(self) -> OrderMode:
        """Knob ``autoindex_order`` in force: ``"esr"`` or ``"set_order"``."""
        return self._order

    @property
    def spawn_mode(self) -> SpawnMode:
        """Knob ``index_tasks`` in force: ``"bounded"`` or ``"unbounded"``."""
        return self._spawn

    @property
    def created_indexes(self) -> frozenset[str]:
        return frozenset(self._created)

    def count_of(self, name: str) -> int:
        return self._counts.get(name, 0)

    def plan(self, flt: Mapping[str, Any] | None, sort: Any = None) -> IndexPlan | None:
        return plan_index(
            flt, sort, max_fields=self._max_fields, prefix_fields=self._prefix_fields,
            order=self._order,
        )  # fmt: skip

    # -- counting ------------------------------------------------------------------------
    def _count(self, name: str) -> int:
        counts = self._counts
        count = counts.get(name, 0) + 1
        counts[name] = count
        if self._counts_mode == "lru":
            counts.move_to_end(name)  # type: ignore[attr-defined]
            if len(counts) > self._max_patterns:
                counts.popitem(last=False)  # type: ignore[call-arg]
                self.stats.evictions += 1
        self.stats.patterns_tracked = len(counts)
        return count

    def _due(self, plan: IndexPlan) -> bool:
        """Count one use of ``plan``; True if its index should be built now."""
        self.stats.observations += 1
        if plan.name in self._created:
            return False
        if self._count(plan.name) < self._threshold:
            return False
        if plan.name in self._in_flight:
            return False
        until = self._failed_until.get(plan.name)
        if until is not None:
            if self._clock() < until:
                return False
            del self._failed_until[plan.name]
        self.stats.threshold_hits += 1
        return True

    def observe(self, flt: Mapping[str, Any] | None, sort: Any = None) -> asyncio.Task[bool] | None:
        """Count this query shape; at the threshold, start the build in the background.

        Never raises and never waits: auto-indexing must not break or slow a query.
        """
        if self._spawn == "unbounded":
            return self._observe_in_task(flt, sort)
        try:
            plan = self.plan(flt, sort)
            if plan is None or not self._due(plan):
                return None
            if len(self._tasks) >= self._max_tasks:
                self.stats.tasks_dropped += 1  # the next hit of the shape tries again
                return None
            loop = asyncio.get_running_loop()
        except Exception as exc:
            log.debug("auto-index observe skipped: %r", exc)
            return None
        task = loop.create_task(self._build(plan))
        self.stats.tasks_spawned += 1
        self._tasks.add(task)
        self._in_flight[plan.name] = task
        task.add_done_callback(self._task_done)
        return task

    def _observe_in_task(
        self, flt: Mapping[str, Any] | None, sort: Any
    ) -> asyncio.Task[bool] | None:
        """The reference's shape: one task per observed query, whether or not it is due."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        task = loop.create_task(self._count_then_build(flt, sort))
        self.stats.tasks_spawned += 1
        self._tasks.add(task)  # strongly referenced (the reference kept none)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _count_then_build(self, flt: Mapping[str, Any] | None, sort: Any) -> bool:
        try:
            return await self.ensure_index_for_query(flt, sort)
        except Exception as exc:
            log.debug("auto-index task failed: %r", exc)
            return False

    def _task_done(self, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        for name, t in list(self._in_flight.items()):
            if t is task:
                del self._in_flight[name]

    async def ensure_index_for_query(self, flt: Mapping[str, Any] | None, sort: Any = None) -> bool:
        """Count the shape and, at the threshold, build its index before returning.

        Returns True if an index for the shape is known to exist afterwards.
        """
        plan = self.plan(flt, sort)
        if plan is None:
            return False
        if self._due(plan):
            return await self._build(plan)
        in_flight = self._in_flight.get(plan.name)
        if in_flight is not None:
            return await asyncio.shield(in_flight)
        return plan.name in self._created

    # -- building ------------------------------------------------------------------------
    async def _build(self, plan: IndexPlan) -> bool:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one build at a time: builds are expensive for the server
            if plan.name in self._created:
                return True
            try:
                created = await create_index_if_missing(self._collection, plan.keys, plan.name)
            except Exception as exc:
                self.stats.build_failures += 1
                self._failed_until[plan.name] = self._clock() + self._retry_delay
                if len(self._failed_until) > self._max_patterns:
                    self._failed_until.pop(next(iter(self._failed_until)))
                log.warning("auto index %s failed: %r", plan.name, exc)
                return False
            if created:
                self.stats.indexes_created += 1
            else:
                self.stats.indexes_found += 1
            self._created.add(plan.name)
            return True

    async def drain(self) -> None:
        """Wait for the builds started so far (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def __repr__(self) -> str:
        return (
            f"AutoIndexManager(counts={self._counts_mode!r}, patterns={len(self._counts)}, "
            f"created={len(self._created)})"
        )


def auto_index_factory(settings: Any) -> Callable[[Any], AutoIndexManager]:
    """A factory for scoped collections, configured from the three auto-index knobs."""
    counts = settings.knob("query_tracker")
    order = settings.knob("autoindex_order")
    spawn = settings.knob("index_tasks")

    def build(collection: Any) -> AutoIndexManager:
        return AutoIndexManager(
            collection, counts=counts, order=order, spawn=spawn, prefix_fields=("experiment_id",)
        )

    return build
