"""Logins while other requests run (extra finding, spec 9): bcrypt inline vs in a thread.

The admin's password hash is made at the app's configured cost (``rounds``; the platform
default is 12, ~0.25 s per check here, so the quick grid uses 10). One op is one login
(``POST /auth/login``: user lookup, bcrypt check, token, cookie) started while one
anonymous client sends ``k`` light requests back to back (a catalog product lookup);
``k`` is calibrated once per parameter point so the requests outlast a login, and one
sample is the mean latency of a light request over that window. bcrypt releases the GIL,
so in a worker thread it overlaps the other requests completely; inline, every request
that arrives during a check waits for all of it.

Counters from one more login: its duration, the light requests served during it, the
event-loop lag (p99, max; heartbeat 5 ms) and the platform calls handed to a worker
thread (exact: 0 inline, 1 in a thread).
"""

from __future__ import annotations

from typing import Any

from bench.studies._platform import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    calibrate,
    during,
    job_counters,
    login,
    product_lookup,
    start_platform,
)
from bench.study import Arm, Params, Study
from platform_core.seed import seed_demo_data

PRODUCTS = 500
_state: dict[tuple[int, int], dict[str, Any]] = {}


async def _setup(ctx: Any, params: Params) -> None:
    await seed_demo_data(ctx.db, experiments=("catalog",), users=0, admins=0,
                         docs_per_collection=PRODUCTS, configs=False)  # fmt: skip
    _state[(id(ctx), int(params["rounds"]))] = {}


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    rounds = int(params["rounds"])
    state = _state[(id(ctx), rounds)]
    # Its own database: the admin's hash is made at this point's cost by the app's startup.
    platform = await start_platform(ctx, settings={"bcrypt_rounds": rounds},
                                    strategies={"password_hashing": variant})  # fmt: skip
    try:
        await seed_demo_data(platform.db, experiments=("catalog",), users=0, admins=0,
                             docs_per_collection=PRODUCTS, configs=False)  # fmt: skip
        light = product_lookup(platform, PRODUCTS)
        visitor = platform.client()

        async def sign_in() -> None:
            visitor.cookies.clear()
            await login(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)

        if "k" not in state:
            state["k"] = await calibrate(sign_in, light, factor=1.0)
        k = int(state["k"])
    except BaseException:
        await platform.close()
        raise

    async def op() -> None:
        await during(sign_in, light, k)

    async def counters() -> dict[str, float]:
        values = await job_counters(sign_in, light, "login")
        values["light_requests_per_op"] = k
        values["bcrypt_rounds"] = rounds
        return values

    return Arm(op=op, counters=counters, close=platform.close, ops_per_call=k)


STUDY = Study(
    name="password_hashing",
    knob="password_hashing",
    description="Light requests while a user logs in: bcrypt on the loop vs in a thread.",
    make_arm=_make_arm,
    setup=_setup,
    params={"rounds": (10, 12)},
    quick_params={"rounds": (10,)},
    ops_per_block=2,
    quick_ops_per_block=1,
    metric="seconds per light request during a login",
)
