"""Experiment reloads and route growth (report 7.1, spec 6.14): append vs replace.

Each arm is the platform app with the three sample experiments, reloaded N times before
timing (``reload_all``: the admin "reload all" button; every upload also reloads). One op
is one request through the app: ``unmatched`` (a 404 on a path under an experiment, which
Starlette answers only after trying every route) or ``matched`` (the catalog's product
API, an indexed ``find_one``). Counters (exact): the app's effective routes and the routes
that serve the catalog. Under ``append`` a matched request still stops at the *first*
inclusion of its experiment (the oldest, stale handler), so only 404s pay for the growth.
"""

from __future__ import annotations

from typing import Any

from bench.studies._platform import product_lookup, start_platform
from bench.study import Arm, Params, Study
from platform_core.seed import seed_demo_data

SAMPLES = ("analytics", "catalog", "click_tracker")
PRODUCTS = 200
UNMATCHED = "/experiments/catalog/no-such-page"


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    platform = await start_platform(ctx, samples=SAMPLES, routes_strategy=variant)
    try:
        await seed_demo_data(platform.db, experiments=("catalog",), users=0, admins=0,
                             docs_per_collection=PRODUCTS, configs=False)  # fmt: skip
        for _ in range(int(params["reloads"])):
            await platform.service.reload_all()
        await platform.service.wait_for_background()
    except BaseException:
        await platform.close()
        raise
    service = platform.service

    if params["request"] == "matched":
        op = product_lookup(platform, PRODUCTS)
    else:

        async def op() -> None:
            response = await platform.http.get(UNMATCHED)
            if response.status_code != 404:
                raise AssertionError(f"expected 404, got {response.status_code}")

    await op()

    async def counters() -> dict[str, float]:
        return {
            "app_routes": service.route_count(),
            "catalog_routes": service.experiment_route_count("catalog"),
        }

    return Arm(op=op, counters=counters, close=platform.close)


STUDY = Study(
    name="routes",
    knob="routes",
    description="A 404 and a matched experiment request after N experiment reloads.",
    make_arm=_make_arm,
    params={"reloads": (0, 20, 50), "request": ("unmatched", "matched")},
    quick_params={"reloads": (20,), "request": ("unmatched",)},
    ops_per_block=10,
    quick_ops_per_block=10,
    metric="seconds per request",
)
