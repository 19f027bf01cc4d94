"""Knob ``pool_size`` (report 4.1): driver defaults (100/0) or MONGODB_MAX/MIN_POOL_SIZE.

The effective pool options are read back from the app's client and reported on
``/healthz``. Under a burst of 60 concurrent operations the pool opens at most
``maxPoolSize`` connections (exact bound, from the app's :class:`PoolMonitor`) with
``tuned`` (here 4), and more than that with the driver's default of 100; every operation
answers the same.
"""

from __future__ import annotations

import asyncio

import pytest

from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import client_for

MAX, MIN = 4, 1
BURST = 60


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("pool_size"))
async def test_effective_pool_and_burst(knob_settings: Settings, variant: str) -> None:
    tuned = variant == "tuned"
    async with running(knob_settings, {"pool_size": variant},
                       mongodb_max_pool_size=MAX, mongodb_min_pool_size=MIN) as app:  # fmt: skip
        async with client_for(app) as http:
            health = (await http.get("/healthz")).json()
        db = app.state.db
        await db.burst.insert_many([{"i": i} for i in range(BURST)])
        monitor = app.state.pool_monitor
        created_before = monitor.connections_created
        found = await asyncio.gather(
            *(db.burst.find_one({"i": i}, {"_id": 0}) for i in range(BURST))
        )
        created = monitor.connections_created - created_before
        total = monitor.connections_created
    assert found == [{"i": i} for i in range(BURST)]
    expected = (MAX, MIN) if tuned else (100, 0)
    assert (health["pool"]["maxPoolSize"], health["pool"]["minPoolSize"]) == expected
    effective = health["pool_effective"]
    assert (effective["maxPoolSize"], effective["minPoolSize"]) == expected
    if tuned:
        assert total <= MAX  # never more connections than the pool allows
    else:
        assert created > MAX  # the burst opened more than a tuned pool would allow
