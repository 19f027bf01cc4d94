"""Deterministic demo data (``platform_core.seed``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient

from platform_core.auth.passwords import PasswordHasher
from platform_core.seed import DEMO_PASSWORD, run_seed, seed_demo_data
from platform_core.settings import Settings

NOW = datetime(2025, 6, 1, tzinfo=UTC)


async def _products(db: Any) -> list[dict[str, Any]]:
    return [d async for d in db.catalog_products.find({}, {"_id": 0}).sort("sku", 1)]


@pytest.mark.asyncio
async def test_seed_is_deterministic_and_idempotent(db: Any) -> None:
    report = await seed_demo_data(db, users=12, admins=2, docs_per_collection=300, now=NOW)
    assert report["collections"] == {"catalog_products": 300, "click_tracker_clicks": 300}
    assert sorted(report["configs"]["inserted"]) == ["analytics", "catalog", "click_tracker"]
    first = await _products(db)
    clicks_first = [
        d async for d in db.click_tracker_clicks.find({}, {"_id": 0}).sort([("ts", 1), ("page", 1)])
    ]
    await seed_demo_data(db, users=12, admins=2, docs_per_collection=300, now=NOW)
    assert await _products(db) == first
    clicks_again = [
        d async for d in db.click_tracker_clicks.find({}, {"_id": 0}).sort([("ts", 1), ("page", 1)])
    ]
    assert clicks_again == clicks_first
    assert await db.users.count_documents({}) == 14
    assert await db.catalog_products.count_documents({}) == 300
    assert all(p["experiment_id"] == "catalog" for p in first)
    assert len({p["sku"] for p in first}) == 300
    # different seed, different data
    await seed_demo_data(db, users=12, admins=2, docs_per_collection=300, now=NOW, seed=7)
    assert await _products(db) != first


@pytest.mark.asyncio
async def test_seeded_accounts_can_log_in_and_have_roles(db: Any) -> None:
    await seed_demo_data(db, users=4, admins=1, docs_per_collection=10, now=NOW)
    admin = await db.users.find_one({"email": "admin0@example.com"})
    assert admin["is_admin"] is True
    assert await PasswordHasher(4).verify(DEMO_PASSWORD, admin["password_hash"])
    rules = {(r["v0"], r["v1"]) async for r in db.casbin_rule.find({"ptype": "g"})}
    assert ("admin0@example.com", "admin") in rules
    assert ("user000@example.com", "developer") in rules
    assert ("user001@example.com", "user") in rules


@pytest.mark.asyncio
async def test_seed_bounds(db: Any) -> None:
    with pytest.raises(ValueError, match="docs_per_collection"):
        await seed_demo_data(db, docs_per_collection=10_001)
    with pytest.raises(ValueError):
        await seed_demo_data(db, users=-1)
    report = await seed_demo_data(db, experiments=("catalog",), users=0, admins=0,
                                  docs_per_collection=5, configs=False)  # fmt: skip
    assert report["collections"] == {"catalog_products": 5} and "configs" not in report


def test_run_seed_sync_entry_point(mongodb_uri: str, db_name: str) -> None:
    settings = Settings(mongodb_uri=mongodb_uri, mongodb_db=db_name)
    try:
        report = run_seed(settings, users=3, admins=1, docs_per_collection=20)
        assert report["collections"]["click_tracker_clicks"] == 20
    finally:
        with MongoClient(mongodb_uri, serverSelectionTimeoutMS=2000) as sync:
            assert sync[db_name].catalog_products.count_documents({}) == 20
            sync.drop_database(db_name)


@pytest.mark.asyncio
async def test_number_of_experiments_adds_draft_configs(db: Any) -> None:
    report = await seed_demo_data(db, experiments=5, users=2, admins=1, docs_per_collection=10)
    assert sorted(report["configs"]["inserted"]) == ["analytics", "catalog", "click_tracker"]
    assert report["configs"]["drafts"] == 2
    drafts = await db.experiments_config.count_documents({"status": "draft"})
    assert drafts == 2
    small = await seed_demo_data(db, experiments=1, users=0, admins=0, docs_per_collection=0)
    assert small["configs"]["inserted"] == [] and small["configs"]["existing"] == ["catalog"]
    with pytest.raises(ValueError, match="experiments must be between"):
        await seed_demo_data(db, experiments=-1)
