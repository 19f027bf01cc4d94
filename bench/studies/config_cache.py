"""Experiment-config lookups (report 1.2/2.1): none, request, request+TTL, +single-flight.

One op is a burst of ``concurrency`` simulated requests for the same popular experiment,
each asking for its config three times (as the hybrid auth dependency does). Every tenth
op an admin "saves" the manifest first (the cache is invalidated), so the cached variants
pay a miss now and then and the burst right after a save shows the stampede that
single-flight collapses. Counters: DB reads per op and the cache's own counters.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bench.study import Arm, Params, Study
from platform_core.experiments.config_cache import CONFIG_COLLECTION, ExperimentConfigCache

SLUG = "catalog"
LOOKUPS_PER_REQUEST = 3
PROJECTION = {"auth_required": 1, "auth_policy": 1, "owner_email": 1}


async def _setup(ctx: Any, params: Params) -> None:
    coll = ctx.db[CONFIG_COLLECTION]
    await coll.drop()
    await coll.insert_many(
        [{"slug": f"exp{i}", "name": f"Experiment {i}", "status": "active"} for i in range(50)]
        + [{"slug": SLUG, "name": "Catalog", "status": "active", "auth_required": False,
            "auth_policy": {"allow_anonymous": True}, "owner_email": "dev@example.com"}]
    )  # fmt: skip
    await coll.create_index("slug", unique=True)


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    cache = ExperimentConfigCache(ctx.db[CONFIG_COLLECTION], strategy=variant)
    concurrency = int(params["concurrency"])
    ops = {"n": 0}

    async def request() -> None:
        req = SimpleNamespace(state=SimpleNamespace())
        for _ in range(LOOKUPS_PER_REQUEST):
            doc = await cache.get(SLUG, request=req, projection=PROJECTION)
            if doc is None:
                raise AssertionError("config missing")

    async def op() -> None:
        ops["n"] += 1
        if ops["n"] % 10 == 0:
            cache.invalidate(SLUG)
        await asyncio.gather(*(request() for _ in range(concurrency)))

    async def counters() -> dict[str, float]:
        c = cache.counters
        n = max(1, ops["n"])
        return {"db_reads_per_op": c.db_reads / n, "hits": c.hits, "request_hits": c.request_hits,
                "misses": c.misses, "coalesced": c.coalesced}  # fmt: skip

    return Arm(op=op, counters=counters, ops_per_call=concurrency)


STUDY = Study(
    name="config_cache",
    knob="config_cache",
    description="Bursts of requests reading one experiment's config 3x each; a save every 10 ops.",
    make_arm=_make_arm,
    setup=_setup,
    params={"concurrency": (1, 20)},
    quick_params={"concurrency": (20,)},
    ops_per_block=20,
    quick_ops_per_block=10,
    counter_ops=10,
    metric="seconds per request",
)
