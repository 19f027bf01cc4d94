"""Knob ``index_guard`` (report 1.3/5.2) reaches the per-request scoped databases.

Exact counters: 50 concurrent first uses of a cold collection through the app send one
``listIndexes`` per request under ``per_wrapper`` and exactly one (and one
``createIndexes``) under ``once_per_process``; a warm request sends none. The guard's own
unit behaviour is in ``tests/test_index_guard.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from platform_core.db.indexes import EXPERIMENT_ID_INDEX_NAME
from platform_core.observability import count_commands
from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import client_for

COLL = "probe_items"


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("index_guard"))
async def test_concurrent_first_uses_through_the_app(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"index_guard": variant}) as app:
        assert app.state.index_guard.mode == variant
        async with client_for(app) as http:
            with count_commands() as cold:
                responses = await asyncio.gather(
                    *(http.post("/experiments/probe/api/items", params={"n": i}) for i in range(50))
                )
                await app.state.index_guard.drain()
            assert [r.status_code for r in responses] == [201] * 50
            warm_headers = []
            with count_commands() as warm:
                for i in range(50, 60):
                    r = await http.post("/experiments/probe/api/items", params={"n": i})
                    warm_headers.append(int(r.headers["x-db-commands"]))
            listing = (await http.get("/experiments/probe/api/items")).json()
        # same observable results: every document stored once, scoped, index present
        assert listing["count"] == 60 and [d["n"] for d in listing["items"]] == list(range(60))
        assert await app.state.db[COLL].count_documents({"experiment_id": "probe"}) == 60
        names = [ix["name"] async for ix in await app.state.db[COLL].list_indexes()]
        assert names.count(EXPERIMENT_ID_INDEX_NAME) == 1
    if variant == "once_per_process":
        assert cold.on(COLL, "listIndexes") == 1 and cold.on(COLL, "createIndexes") == 1
        assert warm.on(COLL, "listIndexes") == 0 and warm_headers == [1] * 10  # the insert
    else:  # per_wrapper: a new wrapper per request, each checks again
        assert cold.on(COLL, "listIndexes") == 50 and cold.on(COLL, "createIndexes") > 1
        assert warm.on(COLL, "listIndexes") == 10 and warm_headers == [2] * 10
