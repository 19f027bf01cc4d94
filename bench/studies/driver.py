"""Driver: motor (thread-pool delegation, deprecated) vs PyMongo's native async client.

Same server, same pool size; the op is a point read, alone or as a burst of concurrent
reads. Motor hops to its executor for every operation (STACK_NOTES: cpu_count*5 threads).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.studies._common import Cycle, ensure_points
from bench.study import Arm, Params, Study


async def _setup(ctx: Any, params: Params) -> None:
    await ensure_points(ctx.db)


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    client = ctx.new_client(driver=variant, maxPoolSize=50)
    coll = client[ctx.db_name].points
    concurrency = int(params["concurrency"])
    keys = Cycle(500)

    async def op() -> None:
        if concurrency == 1:
            await coll.find_one({"_id": keys()})
        else:
            await asyncio.gather(*(coll.find_one({"_id": keys()}) for _ in range(concurrency)))

    await op()  # connect outside the measurement
    return Arm(op=op, ops_per_call=concurrency)


STUDY = Study(
    name="driver",
    knob="driver",
    description="Point reads through motor vs pymongo AsyncMongoClient (per read, alone and 10 concurrent).",
    make_arm=_make_arm,
    setup=_setup,
    params={"concurrency": (1, 10)},
    quick_params={"concurrency": (1,)},
    ops_per_block=20,
    quick_ops_per_block=10,
    metric="seconds per point read",
)
