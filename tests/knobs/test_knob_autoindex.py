"""Knobs ``query_tracker`` (1.4), ``index_tasks`` (5.1) and ``autoindex_order`` (6.4) reach
the scoped collections the app builds per request.

The probe's ``/api/shapes`` route runs ``find()`` calls on one request's scoped collection
and returns that collection's auto-index counters; the index it builds is read back from
the server. The 100k-pattern memory check runs on a manager built by the app's own
factory (``service.scoped_options``). Unit behaviour: ``tests/test_autoindex.py``.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from platform_core.db.autoindex import plan_index
from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import client_for

SHAPE = {"zeta": 1, "alpha": {"$gt": 1}, "mid": 2}  # the probe's repeated query shape


async def _shapes(app: Any, n: int, distinct: bool) -> dict[str, int]:
    async with client_for(app) as http:
        r = await http.post("/experiments/probe/api/shapes",
                            params={"n": n, "distinct": str(distinct).lower()})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


async def _auto_indexes(app: Any) -> list[dict[str, Any]]:
    cursor = await app.state.db["probe_shapes"].list_indexes()
    return [
        {"name": ix["name"], "key": list(ix["key"].items())}
        async for ix in cursor
        if ix["name"].startswith("auto_") and ix["name"] != "auto_experiment_id_asc"
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("query_tracker"))
async def test_query_tracker_bounds_patterns_in_requests(
    knob_settings: Settings, variant: str
) -> None:
    async with running(knob_settings, {"query_tracker": variant}) as app:
        stats = await _shapes(app, 1200, distinct=True)
        assert await _auto_indexes(app) == []  # same result: no shape repeated
        # memory over 100k distinct patterns, on a manager from the app's own factory;
        # tracemalloc (10x slower) watches a 20k-pattern window once the LRU is full
        factory = app.state.experiment_service.scoped_options["auto_index_factory"]
        manager = factory(app.state.db["probe_memory"])
        assert manager.counts_mode == variant
        for i in range(10_000):
            manager.observe({f"f{i}": 1})
        tracemalloc.start()
        try:
            for i in range(10_000, 20_000):
                manager.observe({f"f{i}": 1})
            at_20k = tracemalloc.get_traced_memory()[0]
            for i in range(20_000, 30_000):
                manager.observe({f"f{i}": 1})
            at_30k = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        for i in range(30_000, 100_000):
            manager.observe({f"f{i}": 1})
    assert stats["observations"] == 1200 and stats["tasks_spawned"] == 0
    if variant == "lru":
        assert stats["patterns_tracked"] == 1000 and stats["evictions"] == 200
        assert manager.stats.patterns_tracked == 1000
        assert at_30k - at_20k < 32 * 1024  # flat: 10k more patterns, no more memory
    else:
        assert stats["patterns_tracked"] == 1200 and stats["evictions"] == 0
        assert manager.stats.patterns_tracked == 100_000
        assert at_30k - at_20k > 512 * 1024  # grows with every new pattern (~100 B each)


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("index_tasks"))
async def test_index_tasks_per_find(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"index_tasks": variant}) as app:
        stats = await _shapes(app, 1000, distinct=False)
        built = await _auto_indexes(app)
    # same result: one auto index for the repeated shape
    assert [ix["name"] for ix in built] == ["auto_experiment_id_asc_zeta_asc_mid_asc_alpha_asc"]
    assert stats["indexes_created"] == 1 and stats["observations"] == 1000
    assert stats["tasks_spawned"] == (1000 if variant == "unbounded" else 1)


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("autoindex_order"))
async def test_autoindex_order(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"autoindex_order": variant}) as app:
        stats = await _shapes(app, 3, distinct=False)
        built = await _auto_indexes(app)
    plan = plan_index(SHAPE, prefix_fields=("experiment_id",), order=variant)  # type: ignore[arg-type]
    assert plan is not None and stats["indexes_created"] == 1
    assert built == [{"name": plan.name, "key": [(f, d) for f, d in plan.keys]}]
    # same fields in both variants; only their order may differ
    assert sorted(f for f, _ in built[0]["key"]) == ["alpha", "experiment_id", "mid", "zeta"]
    if variant == "esr":  # equality fields in filter order, then the range field
        assert [f for f, _ in built[0]["key"]] == ["experiment_id", "zeta", "mid", "alpha"]
