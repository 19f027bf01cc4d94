"""Knobs of the scoped data layer that cost CPU, not round trips.

* ``wrapper_cache`` (report 2.2): a request touching one collection five times, with the
  per-database wrapper cache vs building a wrapper on every access. The reference already
  had the per-instance cache (it is both the knob's baseline and default; the report's
  invalidation hook has nothing to invalidate, spec 6.5), so this study measures what the
  cache itself is worth: its baseline here is ``none``.
* ``vector_scope`` (report 5.3): rewriting a ``$vectorSearch`` pipeline on a copy vs in the
  caller's object. SecantusDB cannot run ``$vectorSearch``, so the op is the rewrite; the
  counter is the ``$and`` nesting depth after a pipeline object is reused 10 times.
* ``slots`` (report 9.1): building a request's ``ExperimentDB`` facade with three
  collections, plain classes vs ``__slots__``; counter: bytes per facade (tracemalloc).
"""

from __future__ import annotations

from typing import Any

from bench.studies._common import bytes_retained
from bench.study import Arm, Params, Study
from platform_core.db.facade import experiment_db
from platform_core.db.scoped import ScopedDatabase, scope_pipeline


async def _wrapper_arm(ctx: Any, params: Params, variant: str) -> Arm:
    async def op() -> None:
        scoped = ScopedDatabase(ctx.db, ["app"], "app", index_guard=None,
                                cache_wrappers=variant == "per_instance")  # fmt: skip
        for _ in range(5):
            scoped.collection("items")

    return Arm(op=op)


def _depth(flt: Any) -> int:
    depth = 0
    while isinstance(flt, dict) and "$and" in flt:
        depth += 1
        flt = flt["$and"][0]
    return depth


async def _vector_arm(ctx: Any, params: Params, variant: str) -> Arm:
    stage = {"index": "v", "path": "emb", "queryVector": [0.1] * 64, "numCandidates": 50,
             "limit": 5, "filter": {"category": "a"}}  # fmt: skip
    in_place = variant == "in_place"

    async def op() -> None:
        scope_pipeline([{"$vectorSearch": dict(stage)}, {"$limit": 5}], ["app"], in_place=in_place)

    async def counters() -> dict[str, float]:
        reused = [{"$vectorSearch": dict(stage)}]
        for _ in range(10):
            scope_pipeline(reused, ["app"], in_place=in_place)
        return {"and_depth_after_10_reuses": _depth(reused[0]["$vectorSearch"].get("filter"))}

    return Arm(op=op, counters=counters)


async def _slots_arm(ctx: Any, params: Params, variant: str) -> Arm:
    scoped = ScopedDatabase(ctx.db, ["app"], "app", index_guard=None)

    def build() -> Any:
        facade = experiment_db(scoped, variant)
        for name in ("items", "clicks", "users"):
            facade.collection(name)
        return facade

    async def op() -> None:
        build()

    async def counters() -> dict[str, float]:
        build()  # warm caches so only the facades are counted
        _, held = bytes_retained(lambda: [build() for _ in range(1000)])
        return {"bytes_per_facade": held / 1000}

    return Arm(op=op, counters=counters)


STUDIES = (
    Study(name="wrapper_cache", knob="wrapper_cache", make_arm=_wrapper_arm,
          variants=("none", "per_instance"), baseline="none",
          description="Five accesses to one collection per request: cached vs rebuilt wrapper.",
          ops_per_block=50, quick_ops_per_block=30, metric="seconds per request"),
    Study(name="vector_scope", knob="vector_scope", make_arm=_vector_arm,
          description="Scope a $vectorSearch pipeline on a copy vs in the caller's object.",
          ops_per_block=50, quick_ops_per_block=30, metric="seconds per rewrite"),
    Study(name="slots", knob="slots", make_arm=_slots_arm,
          description="A request's ExperimentDB facade with three collections: plain vs __slots__.",
          ops_per_block=50, quick_ops_per_block=30, metric="seconds per facade"),
)  # fmt: skip
