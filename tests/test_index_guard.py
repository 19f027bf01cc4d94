"""The experiment_id index guard (report 1.3/5.2): command counts on the real server.

Commands are counted with the platform's ``count_commands`` (its listener is on every
client ``create_client`` builds, so also on the ``any_db`` fixture's clients).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from platform_core.db import ScopedDatabase
from platform_core.db.client import maybe_await
from platform_core.db.indexes import (
    EXPERIMENT_ID_INDEX_NAME,
    IndexGuard,
    ensure_experiment_id_index,
    make_index_guard,
)
from platform_core.observability.commands import count_commands

CONCURRENCY = 50


async def index_names(collection: Any) -> list[str]:
    cursor = await maybe_await(collection.list_indexes())
    return [spec["name"] for spec in await cursor.to_list(None)]


async def first_use_by_many_requests(raw: Any, guard: IndexGuard) -> None:
    """50 'requests', each with its own scoped database, touch a cold collection at once."""

    async def request(i: int) -> None:
        db = ScopedDatabase(raw, ["app"], "app", index_guard=guard)
        await db.clicks.find_one({"n": i})

    await asyncio.gather(*(request(i) for i in range(CONCURRENCY)))


@pytest.mark.asyncio
async def test_once_per_process_checks_once_under_concurrency(any_db: Any) -> None:
    guard = IndexGuard("once_per_process")
    with count_commands() as counted:
        await first_use_by_many_requests(any_db, guard)
        await first_use_by_many_requests(any_db, guard)  # later requests: no check at all
    assert counted.on("app_clicks", "listIndexes") == 1
    assert counted.on("app_clicks", "createIndexes") == 1
    assert counted.on("app_clicks", "find") == 2 * CONCURRENCY
    assert guard.stats.checks == 1 and guard.stats.creates == 1
    assert guard.stats.joined_in_flight + guard.stats.fast_path_hits == 2 * CONCURRENCY - 1
    assert (await index_names(any_db["app_clicks"])).count(EXPERIMENT_ID_INDEX_NAME) == 1


@pytest.mark.asyncio
async def test_per_wrapper_baseline_checks_every_wrapper(any_db: Any) -> None:
    guard = IndexGuard("per_wrapper")
    with count_commands() as counted:
        await first_use_by_many_requests(any_db, guard)
    assert counted.on("app_clicks", "listIndexes") == CONCURRENCY
    assert counted.on("app_clicks", "createIndexes") >= 1  # duplicates are likely, not certain
    assert guard.stats.checks == CONCURRENCY
    # Same wrapper, second operation: no new check (the reference checked once per wrapper).
    db = ScopedDatabase(any_db, ["app"], "app", index_guard=guard)
    with count_commands() as counted:
        await db.clicks.find_one({})
        await db.clicks.count_documents({})
    assert counted.on("app_clicks", "listIndexes") == 1
    assert (await index_names(any_db["app_clicks"])).count(EXPERIMENT_ID_INDEX_NAME) == 1


class FlakyCollection:
    """A real collection whose first ``fail`` listIndexes calls fail (a lost connection)."""

    def __init__(self, collection: Any, fail: int = 1) -> None:
        self._collection = collection
        self.fail = fail
        self.full_name = collection.full_name

    def list_indexes(self) -> Any:
        if self.fail > 0:
            self.fail -= 1
            raise AutoReconnect("simulated network error")
        return self._collection.list_indexes()

    async def create_index(self, *args: Any, **kwargs: Any) -> Any:
        return await self._collection.create_index(*args, **kwargs)


@pytest.mark.asyncio
async def test_failed_check_is_not_cached_and_is_retried(any_db: Any) -> None:
    now = [0.0]
    guard = IndexGuard("once_per_process", retry_delay=10.0, clock=lambda: now[0])
    flaky = FlakyCollection(any_db["app_clicks"])
    results = await asyncio.gather(*(guard.ensure(flaky) for _ in range(CONCURRENCY)))
    assert results == [False] * CONCURRENCY  # one failed check, shared by all callers
    assert guard.stats.checks == 1 and guard.stats.failures == 1
    assert not guard.is_done(flaky.full_name)
    assert await guard.ensure(flaky) is False  # within retry_delay: no new round trip
    assert guard.stats.checks == 1 and guard.stats.skipped_after_failure == 1
    now[0] = 11.0
    assert await guard.ensure(flaky) is True  # retried later, and it works
    assert guard.stats.checks == 2 and guard.stats.creates == 1
    assert guard.is_done(flaky.full_name)
    assert EXPERIMENT_ID_INDEX_NAME in await index_names(any_db["app_clicks"])


@pytest.mark.asyncio
async def test_scoped_collection_retries_after_a_failed_check(any_db: Any) -> None:
    guard = IndexGuard("once_per_process", retry_delay=0.0)
    flaky = FlakyCollection(any_db["app_clicks"])
    assert await guard.ensure(flaky) is False
    db = ScopedDatabase(any_db, ["app"], "app", index_guard=guard)
    await db.clicks.insert_one({"k": 1})  # the next first use checks again
    assert guard.is_done(any_db["app_clicks"].full_name)
    assert EXPERIMENT_ID_INDEX_NAME in await index_names(any_db["app_clicks"])


@pytest.mark.asyncio
async def test_cancelled_caller_does_not_cancel_the_shared_check(any_db: Any) -> None:
    guard = IndexGuard()
    first = asyncio.create_task(guard.ensure(any_db["app_clicks"]))
    await asyncio.sleep(0)
    second = asyncio.create_task(guard.ensure(any_db["app_clicks"]))
    await asyncio.sleep(0)
    first.cancel()
    assert await second is True
    assert guard.stats.checks == 1
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.mark.asyncio
async def test_find_starts_the_check_in_the_background(any_db: Any) -> None:
    guard = IndexGuard()
    db = ScopedDatabase(any_db, ["app"], "app", index_guard=guard)
    with count_commands() as counted:
        cursors = [db.clicks.find({}) for _ in range(10)]  # synchronous: cannot await
        await guard.drain()
    assert counted.on("app_clicks", "listIndexes") == 1
    assert guard.is_done(any_db["app_clicks"].full_name)
    for cursor in cursors:
        assert await cursor.to_list(None) == []


@pytest.mark.asyncio
async def test_existing_index_under_another_name_counts(any_db: Any) -> None:
    await any_db["app_clicks"].create_index([("experiment_id", 1)], name="custom")
    with count_commands() as counted:
        assert await ensure_experiment_id_index(any_db["app_clicks"]) is False
    assert counted.on("app_clicks", "createIndexes") == 0


def test_guard_modes_are_validated() -> None:
    assert make_index_guard("per_wrapper").mode == "per_wrapper"
    assert IndexGuard().mode == "once_per_process"
    with pytest.raises(ValueError, match="per_wrapper"):
        make_index_guard("sometimes")
