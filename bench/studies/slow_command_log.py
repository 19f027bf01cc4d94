"""Slow-command logging (report 10.1): the cost of command-monitoring metrics per command.

Two clients on the same server, one with the :class:`SlowCommandLog` listener attached
(histogram per command, slow-command warnings with the filter shape), one without.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from bench.studies._common import Cycle, ensure_points
from bench.study import Arm, Params, Study
from platform_core.observability.slow_commands import SlowCommandLog


async def _setup(ctx: Any, params: Params) -> None:
    await ensure_points(ctx.db)


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    listener = (
        SlowCommandLog(threshold_ms=100, registry=CollectorRegistry()) if variant == "on" else None
    )
    client = ctx.new_client(event_listeners=[listener] if listener else [])
    coll = client[ctx.db_name].points
    keys = Cycle(500)

    async def op() -> None:
        await coll.find_one({"_id": keys(), "k": {"$gte": 0}})

    await op()

    async def counters() -> dict[str, float]:
        return {"commands_observed": float(listener.observed if listener else 0)}

    return Arm(op=op, counters=counters)


STUDY = Study(
    name="slow_command_log",
    knob="slow_command_log",
    description="Point reads with and without the slow-command listener.",
    make_arm=_make_arm,
    setup=_setup,
    ops_per_block=30,
    quick_ops_per_block=15,
    metric="seconds per point read",
)
