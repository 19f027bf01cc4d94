"""Manifest-managed indexes (PLATFORM_SPEC 2.7): per-index status, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from platform_core.experiments.indexes import apply_managed_indexes, index_status
from platform_core.experiments.manifest import validate_manifest

MANAGED = {
    "items": [
        {"name": "by_cat", "type": "regular", "keys": {"category": 1, "price": -1}},
        {"name": "uniq", "type": "regular", "keys": {"sku": 1}, "options": {"unique": True, "bogus": 1}},
        {"name": "expiry", "type": "ttl", "keys": {"ts": 1}, "options": {"expireAfterSeconds": 60}},
        {"name": "instock", "type": "partial", "keys": {"stock": 1},
         "options": {"partialFilterExpression": {"stock": {"$gt": 0}}}},
        {"name": "where", "type": "geospatial", "keys": {"loc": "2dsphere"}},
        {"name": "words", "type": "text", "keys": {"name": "text"}},
        {"name": "vec", "type": "vectorSearch", "definition": {"fields": [
            {"type": "vector", "path": "v", "numDimensions": 3, "similarity": "cosine"},
            {"type": "filter", "path": "experiment_id"}]}},
        {"name": "both", "type": "hybrid", "hybrid": {
            "vector_index": {"definition": {"fields": []}}, "text_index": {"definition": {}}}},
    ]
}  # fmt: skip


def managed(indexes: dict[str, Any]) -> dict[str, Any]:
    """Through the manifest model, as stored in configs (keys normalised to pairs)."""
    return validate_manifest({"name": "x", "managed_indexes": indexes}).to_config()[
        "managed_indexes"
    ]


@pytest.mark.asyncio
async def test_every_index_gets_a_status(db: Any) -> None:
    results = {r.name: r for r in await apply_managed_indexes(db, "shop", managed(MANAGED))}
    for name in ("by_cat", "uniq", "expiry", "instock", "where"):
        assert results[f"shop_{name}"].status == "created", results[f"shop_{name}"]
    for name in ("shop_words", "shop_vec", "shop_both_vector", "shop_both_text"):
        assert results[name].status in ("created", "submitted", "unsupported", "error")
    info = await db.shop_items.index_information()
    assert info["shop_uniq"].get("unique") is True and "bogus" not in info["shop_uniq"]
    assert info["shop_expiry"]["expireAfterSeconds"] == 60
    # second run: nothing to do for regular indexes
    again = {r.name: r.status for r in await apply_managed_indexes(db, "shop", managed(MANAGED))}
    assert again["shop_by_cat"] == "exists"
    # changed keys: dropped and recreated
    changed = managed({"items": [{"name": "by_cat", "type": "regular", "keys": {"category": 1}}]})
    (result,) = await apply_managed_indexes(db, "shop", changed)
    assert result.status == "recreated"
    assert (await db.shop_items.index_information())["shop_by_cat"]["key"] == [("category", 1)]
    status = {s["name"]: s["status"] for s in await index_status(db, "shop", managed(MANAGED))}
    assert status["shop_uniq"] == "present" and status["shop_where"] == "present"
    assert status["shop_vec"] in ("present", "missing", "unsupported")


@pytest.mark.asyncio
async def test_bad_stored_entries_are_reported_not_raised(db: Any) -> None:
    broken = {"items": [{"name": "x", "type": "regular", "keys": [["a", 1]], "options": {"unique": "maybe"}},
                        {"name": "y", "type": "nonsense"}, {"type": "regular"}]}  # fmt: skip
    results = await apply_managed_indexes(db, "shop", broken)
    assert len(results) == 3 and all(r.status == "error" for r in results)
