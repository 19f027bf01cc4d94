"""Foundation overheads (issue "Foundation", measures): what the data layer itself costs.

* ``scoped_overhead``: the raw driver collection vs the scoped wrapper of the same
  physical collection, for ``find_one`` (by ``_id``) and ``insert_one``.
* ``counter_overhead``: a client without the command counter, with it attached but no
  counting block active (the platform's normal state), and inside ``count_commands()``.

These are harness studies (no platform knob): security is not a knob, the wrapper is
always on; the numbers say what it costs.
"""

from __future__ import annotations

from typing import Any

from bench.studies._common import Cycle
from bench.study import Arm, Params, Study
from platform_core.db.indexes import IndexGuard
from platform_core.db.scoped import ScopedDatabase
from platform_core.observability import count_commands

SLUG = "bench"
N_DOCS = 500


async def _setup(ctx: Any, params: Params) -> None:
    coll = ctx.db[f"{SLUG}_items"]
    await coll.drop()
    await coll.insert_many([{"_id": i, "experiment_id": SLUG, "k": i} for i in range(N_DOCS)])
    await coll.create_index("experiment_id", name="auto_experiment_id_asc")


async def _make_scoped_arm(ctx: Any, params: Params, variant: str) -> Arm:
    if variant == "raw":
        coll: Any = ctx.db[f"{SLUG}_items"]
    else:
        scoped = ScopedDatabase(
            ctx.db, read_scopes=[SLUG], write_scope=SLUG, index_guard=IndexGuard()
        )
        coll = scoped.collection("items")
        await coll.find_one({"_id": 0})  # first use ensures the index outside the measurement
    keys = Cycle(N_DOCS)

    if params["op"] == "find_one":

        async def op() -> None:
            await coll.find_one({"_id": keys()})
    else:

        async def op() -> None:
            await coll.insert_one({"k": 1, "experiment_id": SLUG})

    return Arm(op=op)


async def _make_counter_arm(ctx: Any, params: Params, variant: str) -> Arm:
    client = ctx.new_client(count_commands=variant != "no_listener")
    coll = client[ctx.db_name][f"{SLUG}_items"]
    keys = Cycle(N_DOCS)

    if variant == "counting":

        async def op() -> None:
            with count_commands():
                await coll.find_one({"_id": keys()})
    else:

        async def op() -> None:
            await coll.find_one({"_id": keys()})

    await op()
    return Arm(op=op)


STUDIES = (
    Study(
        name="scoped_overhead",
        knob=None,
        description="Raw driver collection vs the scoped wrapper (find_one by _id, insert_one).",
        make_arm=_make_scoped_arm,
        setup=_setup,
        variants=("raw", "scoped"),
        baseline="raw",
        params={"op": ("find_one", "insert_one")},
        ops_per_block=50,
        quick_ops_per_block=25,
        metric="seconds per operation",
        section_override="foundation",
    ),
    Study(
        name="counter_overhead",
        knob=None,
        description="find_one without the command counter, with it idle, and inside count_commands().",
        make_arm=_make_counter_arm,
        setup=_setup,
        variants=("no_listener", "idle", "counting"),
        baseline="no_listener",
        ops_per_block=50,
        quick_ops_per_block=25,
        metric="seconds per find_one",
        section_override="foundation",
    ),
)
