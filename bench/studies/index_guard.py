"""experiment_id index checks (report 1.3/5.2): per scoped wrapper vs once per process.

In the web path a scoped database is built for every request. One op is one such request:
a new ``ScopedDatabase`` that reads from ``collections`` of its collections. The baseline
checks the index (``listIndexes``) on every new wrapper; the default checks once per
collection per process. Counters: listIndexes/createIndexes per request, and the
mechanism figure of the issue: commands issued by 50 concurrent first uses of a cold
collection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.studies._common import Cycle
from bench.study import Arm, Params, Study
from platform_core.db.indexes import IndexGuard
from platform_core.db.scoped import ScopedDatabase
from platform_core.observability import count_commands

SLUG = "guarded"
N_DOCS = 200


async def _setup(ctx: Any, params: Params) -> None:
    for c in range(int(params["collections"])):
        coll = ctx.db[f"{SLUG}_c{c}"]
        await coll.drop()
        await coll.insert_many([{"_id": i, "experiment_id": SLUG} for i in range(N_DOCS)])


async def _cold_start_commands(ctx: Any, mode: str, label: str) -> dict[str, float]:
    """50 concurrent first uses of a brand-new collection under a fresh guard."""
    guard = IndexGuard(mode=mode)  # type: ignore[arg-type]
    name = f"cold_{label}"
    await ctx.db[f"{SLUG}_{name}"].drop()

    async def first_use() -> None:
        scoped = ScopedDatabase(ctx.db, read_scopes=[SLUG], write_scope=SLUG, index_guard=guard)
        await scoped.collection(name).find_one({"_id": 1})

    with count_commands() as counted:
        await asyncio.gather(*(first_use() for _ in range(50)))
    return {
        "cold50_listIndexes": counted.by_name["listIndexes"],
        "cold50_createIndexes": counted.by_name["createIndexes"],
    }


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    guard = IndexGuard(mode=variant)  # type: ignore[arg-type]
    collections = int(params["collections"])
    keys = Cycle(N_DOCS)

    async def op() -> None:
        scoped = ScopedDatabase(ctx.db, read_scopes=[SLUG], write_scope=SLUG, index_guard=guard)
        for c in range(collections):
            await scoped.collection(f"c{c}").find_one({"_id": keys()})

    await op()

    async def counters() -> dict[str, float]:
        return await _cold_start_commands(ctx, variant, f"{variant}_{collections}")

    return Arm(op=op, counters=counters)


STUDY = Study(
    name="index_guard",
    knob="index_guard",
    description="A request's scoped reads with the experiment_id index checked per wrapper vs once per process.",
    make_arm=_make_arm,
    setup=_setup,
    params={"collections": (1, 2)},
    quick_params={"collections": (2,)},
    ops_per_block=20,
    quick_ops_per_block=10,
    metric="seconds per request",
)
