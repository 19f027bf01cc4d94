import pytest


@pytest.mark.asyncio
async def test_roundtrip_both_drivers(any_db) -> None:
    await any_db.things.insert_one({"a": 1})
    assert (await any_db.things.find_one({"a": 1}))["a"] == 1
