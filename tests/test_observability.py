"""The instrumentation core: exact command counts, pool events, loop lag (real server)."""

from __future__ import annotations

import asyncio
import time

import pytest

from platform_core.db.client import close_client, create_client
from platform_core.observability import LoopLagMonitor, PoolMonitor, count_commands


@pytest.mark.asyncio
async def test_n_finds_are_n_commands_and_one_in_is_one(any_db) -> None:
    await any_db.items.insert_many([{"k": i} for i in range(20)])
    with count_commands() as counted:
        for i in range(7):
            await any_db.items.find_one({"k": i})
    assert counted.total == 7
    assert counted.by_name["find"] == 7
    assert counted.on("items", "find") == 7

    with count_commands() as counted:
        docs = await any_db.items.find({"k": {"$in": list(range(7))}}).to_list(None)
    assert len(docs) == 7
    assert counted.total == 1


@pytest.mark.asyncio
async def test_nothing_counted_outside_a_block(any_db) -> None:
    with count_commands() as counted:
        pass
    await any_db.items.insert_one({"k": 1})
    assert counted.total == 0


@pytest.mark.asyncio
async def test_concurrent_tasks_do_not_see_each_others_commands(any_db) -> None:
    await any_db.items.insert_many([{"k": i} for i in range(10)])

    async def worker(n: int) -> int:
        with count_commands() as counted:
            for _ in range(n):
                await any_db.items.find_one({"k": 1})
                await asyncio.sleep(0)  # interleave with the other workers
        return counted.total

    results = await asyncio.gather(*(worker(n) for n in (3, 5, 8, 13)))
    assert results == [3, 5, 8, 13]


@pytest.mark.asyncio
async def test_nested_blocks_and_child_tasks(any_db) -> None:
    with count_commands() as outer:
        await any_db.items.insert_one({"k": 1})
        with count_commands() as inner:
            # a task started inside the block inherits the context, so it is counted
            async def child() -> int:
                return await any_db.items.count_documents({})

            await asyncio.create_task(child())
        await any_db.items.find_one({})
    assert inner.total == 1
    assert outer.total == 3
    assert outer.by_name == {"insert": 1, "aggregate": 1, "find": 1}


@pytest.mark.asyncio
async def test_failed_commands_are_counted(any_db) -> None:
    with count_commands() as counted:
        with pytest.raises(Exception):  # noqa: B017 - any server error will do
            await any_db.command("noSuchCommandHere")
    assert counted.failed == 1


@pytest.mark.asyncio
async def test_pool_monitor_sees_creation_and_waits(
    mongodb_uri: str, db_name: str, driver: str
) -> None:
    monitor = PoolMonitor()
    client = create_client(mongodb_uri, driver=driver, event_listeners=[monitor], maxPoolSize=1)
    try:
        coll = client[db_name].items
        await coll.insert_one({"k": 1})
        await asyncio.gather(*(coll.find_one({"k": 1}) for _ in range(20)))
        snap = monitor.snapshot()
        assert snap.connections_created == 1  # maxPoolSize=1: every op shares one socket
        assert snap.checked_out >= 21
        assert snap.in_use == 0
        assert snap.wait_max_ms > 0  # 20 tasks queued for one connection
    finally:
        await client.drop_database(db_name)
        await close_client(client)


@pytest.mark.asyncio
async def test_loop_lag_sees_a_blocking_call() -> None:
    async with LoopLagMonitor(interval=0.005) as lag:
        await asyncio.sleep(0.05)
        time.sleep(0.08)  # noqa: ASYNC251 - blocks the loop on purpose
        await asyncio.sleep(0.03)
    stats = lag.stats()
    assert stats.samples >= 3
    assert stats.max_ms >= 60


@pytest.mark.asyncio
async def test_loop_lag_idle_is_small() -> None:
    async with LoopLagMonitor(interval=0.005) as lag:
        await asyncio.sleep(0.2)
    # mechanism check, not a speed target: an idle loop has no 50 ms stall
    assert lag.stats().max_ms < 50
