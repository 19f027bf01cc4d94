"""The auto-index manager's three knobs, as three studies.

* ``query_tracker`` (report 1.4): pattern counts in an unbounded dict vs a 1000-entry LRU.
  The op observes 1000 distinct query shapes; the counter is the memory held after
  100 000 distinct shapes (tracemalloc) — the mechanism the report is about.
* ``index_tasks`` (report 5.1): a task per ``find()`` vs synchronous counting. The op is
  200 scoped ``find()`` calls (cursor creation; the spawned tasks are drained inside the
  op so their cost is counted). Counter: tasks spawned per find.
* ``autoindex_order`` (spec 6.4): set-ordered vs equality-sort-range field order. Timing
  is immaterial; the counter is how many different index names one query shape gets in
  four processes with different hash seeds (duplicate index builds on a shared server).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

from bench.studies._common import bytes_retained
from bench.study import Arm, Params, Study
from platform_core.db.autoindex import AutoIndexManager, plan_index
from platform_core.db.indexes import IndexGuard
from platform_core.db.scoped import ScopedDatabase


class _NoServer:
    """Index builds are not what these studies measure: a collection that never builds."""

    async def list_indexes(self) -> Any:  # pragma: no cover - threshold never reached
        raise RuntimeError("not used")


async def _tracker_arm(ctx: Any, params: Params, variant: str) -> Arm:
    manager = AutoIndexManager(_NoServer(), counts=variant, threshold=10**9)
    state = {"next": 0}

    async def op() -> None:
        start = state["next"]
        for i in range(start, start + 1000):
            manager.observe({f"field_{i}": 1})
        state["next"] = start + 1000

    async def counters() -> dict[str, float]:
        fresh = AutoIndexManager(_NoServer(), counts=variant, threshold=10**9)

        def observe_100k() -> None:
            for i in range(100_000):
                fresh.observe({f"f{i}": 1})

        _, held = bytes_retained(observe_100k)
        return {"patterns_after_100k": fresh.stats.patterns_tracked, "kib_after_100k": held / 1024}

    return Arm(op=op, counters=counters, ops_per_call=1000)


async def _tasks_arm(ctx: Any, params: Params, variant: str) -> Arm:
    def factory(coll: Any) -> AutoIndexManager:
        return AutoIndexManager(coll, spawn=variant, prefix_fields=("experiment_id",))

    scoped = ScopedDatabase(ctx.db, read_scopes=["tasks"], write_scope="tasks",
                            index_guard=IndexGuard(), auto_index_factory=factory)  # fmt: skip
    coll = scoped.collection("items")
    await coll.insert_one({"k": 1})
    finds = {"n": 0}

    async def op() -> None:
        for i in range(200):
            coll.find({"k": i % 50, "tag": {"$exists": True}})
        finds["n"] += 200
        await coll.drain_index_tasks()

    async def counters() -> dict[str, float]:
        stats = coll.auto_index_stats or {}
        return {"tasks_per_find": stats.get("tasks_spawned", 0) / max(1, finds["n"])}

    return Arm(op=op, counters=counters, ops_per_call=200)


_SHAPE = "{'status': 'a', 'owner': {'$in': [1]}, 'sku': 2, 'price': {'$gt': 1}, 'tag': 3}"


async def _order_arm(ctx: Any, params: Params, variant: str) -> Arm:
    shape = eval(_SHAPE)  # a literal; kept as text so the subprocesses see the same shape

    async def op() -> None:
        plan_index(shape, [("created", -1)], order=variant)  # type: ignore[arg-type]

    async def counters() -> dict[str, float]:
        code = (
            "from platform_core.db.autoindex import plan_index;"
            f"print(plan_index({_SHAPE}, [('created', -1)], order={variant!r}).name)"
        )

        def name_in(seed: int) -> str:
            env = {**os.environ, "PYTHONHASHSEED": str(seed)}
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True, env=env)  # fmt: skip
            return done.stdout.strip()

        names = {await asyncio.to_thread(name_in, seed) for seed in range(4)}
        return {"index_names_in_4_processes": len(names)}

    return Arm(op=op, counters=counters, ops_per_call=1)


STUDIES = (
    Study(name="query_tracker", knob="query_tracker", make_arm=_tracker_arm,
          description="Observe 1000 distinct query shapes per op; memory after 100k shapes.",
          ops_per_block=10, quick_ops_per_block=5, metric="seconds per observed shape"),
    Study(name="index_tasks", knob="index_tasks", make_arm=_tasks_arm,
          description="200 scoped find() calls per op: a task per call vs counting in line.",
          ops_per_block=10, quick_ops_per_block=5, metric="seconds per find()"),
    Study(name="autoindex_order", knob="autoindex_order", make_arm=_order_arm,
          description="Index plan for one query shape; distinct names across hash seeds.",
          ops_per_block=50, quick_ops_per_block=30, metric="seconds per plan"),
)  # fmt: skip
