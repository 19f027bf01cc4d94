"""Pool sizing (report 4.1): driver defaults (max 100, min 0) vs the tuned pool (max 50, min 10).

The op is a burst of concurrent point reads through a fresh client per arm, so the pool
actually grows; counters show the connections each arm opened and its check-out waits.
On SecantusDB more connections mostly add server threads (STACK_NOTES: a ~1.2–2k ops/s
ceiling whatever the concurrency), so expect small timing differences: that is a finding.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.studies._common import Cycle, ensure_points
from bench.study import Arm, Params, Study
from platform_core.observability import PoolMonitor


async def _setup(ctx: Any, params: Params) -> None:
    await ensure_points(ctx.db)


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    settings = ctx.settings(tuning="optimized", knobs=f"pool_size={variant}")
    monitor = PoolMonitor()
    options = settings.pool_options()
    options.pop("appname", None)
    client = ctx.new_client(event_listeners=[monitor], **options)
    coll = client[ctx.db_name].points
    concurrency = int(params["concurrency"])
    keys = Cycle(500)

    async def op() -> None:
        await asyncio.gather(*(coll.find_one({"_id": keys()}) for _ in range(concurrency)))

    await op()

    async def counters() -> dict[str, float]:
        snap = monitor.snapshot()
        return {
            "max_pool_size": float(options["maxPoolSize"]),  # type: ignore[arg-type]
            "min_pool_size": float(options["minPoolSize"]),  # type: ignore[arg-type]
            "connections_created": snap.connections_created,
            "checkout_wait_p99_ms": snap.wait_p99_ms,
        }

    return Arm(op=op, counters=counters, ops_per_call=concurrency)


STUDY = Study(
    name="pool_size",
    knob="pool_size",
    description="Bursts of concurrent point reads through a driver-default vs a tuned pool.",
    make_arm=_make_arm,
    setup=_setup,
    params={"concurrency": (10, 50, 150)},
    quick_params={"concurrency": (50,)},
    ops_per_block=10,
    quick_ops_per_block=5,
    metric="seconds per read in a burst",
)
