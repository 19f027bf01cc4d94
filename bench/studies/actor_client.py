"""Actor DB clients (report 4.2): a new client per actor database vs one shared client.

The op is what an actor does when it (re)creates its database handle and serves one read.
Counters: clients and connections created per op. The baseline closes its client inside
the op (the reference leaked it instead), so its time includes connect + close.
"""

from __future__ import annotations

from typing import Any

from bench.studies._common import Cycle, ensure_points
from bench.study import Arm, Params, Study
from platform_core.db.actor_clients import ActorClients
from platform_core.observability import PoolMonitor


async def _setup(ctx: Any, params: Params) -> None:
    await ensure_points(ctx.db)


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    monitor = PoolMonitor()
    clients = ActorClients(ctx.settings(), strategy=variant, event_listeners=[monitor])  # type: ignore[arg-type]
    keys = Cycle(500)
    seen = {"ops": 0}

    async def op() -> None:
        seen["ops"] += 1
        db = clients.database(ctx.db_name)
        await db.points.find_one({"_id": keys()})
        if variant == "per_call":
            # The reference leaked these clients; the workbench closes them (inside the
            # measured op) so a long run does not pile up hundreds of pools and monitors.
            await clients.close_all()

    async def counters() -> dict[str, float]:
        return {
            "clients_created_per_op": clients.clients_created / max(1, seen["ops"]),
            "connections_created_per_op": monitor.snapshot().connections_created
            / max(1, seen["ops"]),
        }

    return Arm(op=op, counters=counters, close=clients.close_all)


STUDY = Study(
    name="actor_client",
    knob="actor_client",
    description="Actor database handle + one read: new client per call vs a shared client.",
    make_arm=_make_arm,
    setup=_setup,
    ops_per_block=10,
    quick_ops_per_block=5,
    metric="seconds per handle + read",
)
