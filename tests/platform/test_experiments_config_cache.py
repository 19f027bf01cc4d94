"""The experiment-config cache (knob config_cache, PLATFORM_SPEC 2.11/6.2).

Exact DB command counts prove each mechanism: a warm lookup sends nothing, a save
invalidates synchronously, 50 concurrent misses share one read with single-flight.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from platform_core.experiments.config_cache import ExperimentConfigCache
from platform_core.observability import count_commands


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_request() -> Any:
    return SimpleNamespace(state=SimpleNamespace())


async def _seed(db: Any, *slugs: str) -> None:
    await db.experiments_config.insert_many(
        [{"slug": s, "name": s, "status": "active"} for s in slugs]
    )


@pytest.mark.asyncio
async def test_warm_lookup_issues_no_command_and_save_invalidates(db: Any) -> None:
    await _seed(db, "catalog")
    cache = ExperimentConfigCache(db.experiments_config)
    with count_commands() as cold:
        assert (await cache.get("catalog"))["name"] == "catalog"
    assert cold.total == 1
    with count_commands() as warm:
        for _ in range(5):
            assert (await cache.get("catalog"))["name"] == "catalog"
    assert warm.total == 0
    # A save (the admin route updates, then invalidates synchronously): next read is fresh.
    await db.experiments_config.update_one({"slug": "catalog"}, {"$set": {"name": "renamed"}})
    cache.invalidate("catalog")
    with count_commands() as fresh:
        assert (await cache.get("catalog"))["name"] == "renamed"
    assert fresh.total == 1
    assert cache.counters.hits == 5 and cache.counters.db_reads == 2


@pytest.mark.asyncio
async def test_single_flight_coalesces_concurrent_misses(db: Any) -> None:
    await _seed(db, "catalog")
    cache = ExperimentConfigCache(db.experiments_config, strategy="request_ttl_singleflight")
    with count_commands() as counted:
        results = await asyncio.gather(*(cache.get("catalog") for _ in range(50)))
    assert all(r["slug"] == "catalog" for r in results)
    assert counted.by_name["find"] == 1
    assert cache.counters.coalesced == 49
    # Callers get private copies: mutating one result does not affect the others.
    results[0]["name"] = "poisoned"
    assert results[1]["name"] == "catalog"


@pytest.mark.asyncio
async def test_without_single_flight_concurrent_misses_all_read(db: Any) -> None:
    await _seed(db, "catalog")
    cache = ExperimentConfigCache(db.experiments_config, strategy="request_ttl")
    with count_commands() as counted:
        await asyncio.gather(*(cache.get("catalog") for _ in range(10)))
    assert counted.by_name["find"] == 10


@pytest.mark.asyncio
async def test_none_strategy_reads_every_time_and_request_strategy_per_request(db: Any) -> None:
    await _seed(db, "catalog")
    none = ExperimentConfigCache(db.experiments_config, strategy="none")
    request = fake_request()
    with count_commands() as counted:
        for _ in range(3):
            await none.get("catalog", request=request)
    assert counted.total == 3

    per_request = ExperimentConfigCache(db.experiments_config, strategy="request")
    with count_commands() as counted:
        for _ in range(3):
            await per_request.get("catalog", request=request)
        await per_request.get("catalog", request=fake_request())
    assert counted.total == 2  # one per request
    assert per_request.counters.request_hits == 2


@pytest.mark.asyncio
async def test_cache_poisoning_is_impossible(db: Any) -> None:
    await _seed(db, "catalog")
    cache = ExperimentConfigCache(db.experiments_config)
    request = fake_request()
    first = await cache.get("catalog", request=request)
    first["status"] = "hacked"
    first.pop("name")
    again = await cache.get("catalog", request=request)
    other = await cache.get("catalog")
    assert again["status"] == other["status"] == "active" and "name" in again


@pytest.mark.asyncio
async def test_none_is_not_cached(db: Any) -> None:
    cache = ExperimentConfigCache(db.experiments_config)
    assert await cache.get("later") is None
    await _seed(db, "later")
    assert (await cache.get("later"))["slug"] == "later"


@pytest.mark.asyncio
async def test_ttl_expiry_and_lru_eviction(db: Any) -> None:
    await _seed(db, "a", "b", "c")
    clock = Clock()
    cache = ExperimentConfigCache(db.experiments_config, ttl_seconds=10, max_size=2, clock=clock)
    await cache.get("a")
    await cache.get("b")
    await cache.get("a")  # a is now most recently used
    await cache.get("c")  # evicts b
    assert cache.counters.evictions == 1
    with count_commands() as counted:
        await cache.get("a")
    assert counted.total == 0
    clock.now += 11
    with count_commands() as counted:
        await cache.get("a")
    assert counted.total == 1 and cache.counters.expiries == 1
    stats = cache.stats()
    assert stats["size"] == 2 and stats["strategy"] == "request_ttl_singleflight"


@pytest.mark.asyncio
async def test_projection_keys_and_batch_loader(db: Any) -> None:
    await _seed(db, "a", "b", "c")
    cache = ExperimentConfigCache(db.experiments_config)
    slim = await cache.get("a", projection={"_id": 0, "status": 1})
    assert slim == {"status": "active"}
    assert (await cache.get("a"))["name"] == "a"  # the full doc is a different key
    cache.invalidate("a")
    assert cache.stats()["size"] == 0
    with count_commands() as counted:
        found = await cache.get_many(["a", "b", "c", "missing"])
    assert sorted(found) == ["a", "b", "c"] and counted.total == 1
    with count_commands() as counted:
        await cache.get_many(["a", "b"])
    assert counted.total == 0


@pytest.mark.asyncio
async def test_invalidation_during_a_read_does_not_store_stale_data(db: Any) -> None:
    await _seed(db, "a")
    cache = ExperimentConfigCache(db.experiments_config)
    task = asyncio.create_task(cache.get("a"))
    await asyncio.sleep(0)  # the read is in flight
    cache.invalidate("a")
    await task
    assert cache.stats()["size"] == 0


def test_rejects_unknown_strategy_and_bad_slug() -> None:
    with pytest.raises(ValueError, match="unknown config cache strategy"):
        ExperimentConfigCache(object(), strategy="lru")
    cache = ExperimentConfigCache(object())
    with pytest.raises(ValueError):
        asyncio.run(cache.get("../x"))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("strategy", "config_finds"),
    [("none", 2), ("request", 1), ("request_ttl", 0), ("request_ttl_singleflight", 0)],
)
async def test_config_reads_per_experiment_request(platform_settings: Any, strategy: str,
                                                   config_finds: int) -> None:  # fmt: skip
    """One catalog listing asks for its config twice (access policy + page size)."""
    from platform_core.experiments.testing import started_app
    from tests.platform.conftest import client_for

    async with started_app(platform_settings, config_cache_strategy=strategy) as app:
        async with client_for(app) as http:
            url = "/experiments/catalog/api/products"
            assert (await http.get(url)).status_code == 200  # warm-up
            with count_commands() as counted:
                assert (await http.get(url)).status_code == 200
            assert counted.on("experiments_config", "find") == config_finds
            stats = app.state.experiment_service.config_cache.stats()
            assert stats["strategy"] == strategy


def test_strategies_follow_the_tuning_preset(mongodb_uri: str) -> None:
    from platform_core.app import create_app
    from platform_core.experiments import ExperimentService
    from platform_core.settings import Settings

    baseline = ExperimentService(create_app(Settings(mongodb_uri=mongodb_uri, tuning="baseline")))
    assert baseline.strategies.as_dict() == {
        "routes": "append", "config_cache": "none", "static_cache": "plain",
        "seed_lookup": "per_folder", "dir_scan": "uncached", "export_build": "on_loop",
        "export_cleanup": "on_loop",
    }  # fmt: skip
    mixed = Settings(mongodb_uri=mongodb_uri, knobs="routes=append,config_cache=request")
    service = ExperimentService(create_app(mixed), static_strategy="plain")
    assert service.routes_strategy == "append" and service.config_cache.strategy == "request"
    assert service.static_strategy == "plain" and service.strategies.export_build == "thread"
