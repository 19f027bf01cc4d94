"""ExperimentDB facade: both knob variants (plain, slots) behave the same; errors surface."""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure

from platform_core.db.facade import experiment_db
from platform_core.db.scoped import ScopedDatabase


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", ["plain", "slots"])
async def test_variants_give_the_same_results(db, variant: str) -> None:
    facade = experiment_db(ScopedDatabase(db, ["app"], "app", index_guard=None), variant)
    await facade.items.insert_one({"v": 1, "experiment_id": "evil"})
    doc = await facade.collection("items").find_one({"v": 1})
    assert doc["experiment_id"] == "app"
    assert await facade.items.count_documents({}) == 1
    assert facade.items is facade.collection("items")
    assert facade.items.name == "app_items"


@pytest.mark.parametrize("variant", ["plain", "slots"])
def test_no_escape_hatch_and_slots_only_where_asked(db, variant: str) -> None:
    facade = experiment_db(ScopedDatabase(db, ["app"], "app", index_guard=None), variant)
    for name in ("raw", "database", "_scoped_db", "drop", "create_index"):
        with pytest.raises(AttributeError):
            getattr(facade.items, name)
    assert hasattr(facade, "__dict__") is (variant == "plain")
    assert hasattr(facade.items, "__dict__") is (variant == "plain")


@pytest.mark.asyncio
async def test_find_one_does_not_swallow_errors(db) -> None:
    facade = experiment_db(ScopedDatabase(db, ["app"], "app", index_guard=None))
    with pytest.raises(OperationFailure):
        await facade.items.find_one({"v": {"$noSuchOperator": 1}})
