"""Background-task metrics (report 4.3): what timing every task costs.

The op spawns a batch of short background tasks through the TaskManager and waits for
them; ``on`` records each duration in a histogram and checks the slow-task threshold.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from bench.study import Arm, Params, Study
from platform_core.tasks import TaskManager

BATCH = 50


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    manager = TaskManager(max_tasks=1000, metrics=variant == "on", registry=CollectorRegistry())

    async def job() -> None:
        await asyncio.sleep(0)

    async def op() -> None:
        for i in range(BATCH):
            manager.spawn(job(), f"job{i % 4}")
        await manager.drain()

    async def counters() -> dict[str, float]:
        return {"tasks_started": float(manager.started), "tasks_rejected": float(manager.rejected)}

    return Arm(op=op, counters=counters, ops_per_call=BATCH, close=manager.shutdown)


STUDY = Study(
    name="task_metrics",
    knob="task_metrics",
    description="Spawn-and-finish cost of a background task with and without duration metrics.",
    make_arm=_make_arm,
    ops_per_block=20,
    quick_ops_per_block=10,
    metric="seconds per background task",
)
