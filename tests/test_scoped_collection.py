"""The scoping table of PLATFORM_SPEC 2.4 (with its defects fixed), against the real server.

Every test runs once per driver (``any_db``: pymongo async and motor). ``raw`` is the
unscoped test database, used only to seed and to check what really is stored.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.operations import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne

from platform_core.db import (
    ScopedCollection,
    ScopedCollectionWrapper,
    ScopedDatabase,
    ScopedMongoWrapper,
    ScopeViolation,
)
from platform_core.db.client import maybe_await
from platform_core.db.indexes import EXPERIMENT_ID_INDEX_NAME, IndexGuard
from platform_core.db.scoped import ScopedCursor, scope_pipeline, scope_update


def scoped(raw: Any, write: str, read: list[str] | None = None, **kw: Any) -> ScopedDatabase:
    kw.setdefault("index_guard", IndexGuard())
    return ScopedDatabase(raw, read or [write], write, **kw)


async def stored(raw: Any, name: str, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return await raw[name].find(flt or {}, {"_id": 0}).sort("k", 1).to_list(None)


async def seed(raw: Any) -> None:
    """Two experiments' documents in one physical collection, plus one foreign collection."""
    await raw["app_items"].insert_many(
        [{"k": i, "experiment_id": "app"} for i in range(3)]
        + [{"k": 10 + i, "experiment_id": "shared"} for i in range(2)]
        + [{"k": 20, "experiment_id": "other"}]
    )
    await raw["shared_items"].insert_many(
        [{"k": 30 + i, "experiment_id": "shared"} for i in range(2)]
        + [{"k": 40, "experiment_id": "other"}]
    )


# -- naming ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_collection_names_are_exact(any_db: Any) -> None:
    db = scoped(any_db, "app", ["app", "shared"])
    assert db.items is db["items"] is db.collection("items") is db.get_collection("items")
    assert db.items.name == "app_items" and db.items.base_name == "items"
    assert db.items.owner == "app" and db.items.writable
    # An underscore never means "use verbatim" (the reference's get_collection did).
    assert db["shared_items"].name == "app_shared_items"
    foreign = db.collection("items", owner="shared")
    assert foreign.name == "shared_items" and not foreign.writable
    assert db.collection("items", owner="app") is db.items
    assert ScopedMongoWrapper is ScopedDatabase and ScopedCollectionWrapper is ScopedCollection
    assert db.read_scopes == ("app", "shared") and db.write_scope == "app"


@pytest.mark.asyncio
async def test_write_scope_is_always_readable(any_db: Any) -> None:
    db = ScopedDatabase(any_db, ["shared"], "app", index_guard=IndexGuard())
    assert db.read_scopes == ("app", "shared")


# -- inserts --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_inserts_are_tagged_and_caller_dicts_untouched(any_db: Any) -> None:
    db = scoped(any_db, "app")
    doc = {"k": 1, "experiment_id": "other"}
    docs = [{"k": 2}, {"k": 3, "experiment_id": "shared"}]
    before = copy.deepcopy((doc, docs))
    one = await db.items.insert_one(doc)
    many = await db.items.insert_many(docs)
    assert (doc, docs) == before  # no experiment_id rewrite, no _id added
    assert isinstance(one.inserted_id, ObjectId) and len(many.inserted_ids) == 2
    assert await stored(any_db, "app_items") == [
        {"k": 1, "experiment_id": "app"},
        {"k": 2, "experiment_id": "app"},
        {"k": 3, "experiment_id": "app"},
    ]


# -- reads ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reads_see_the_read_scopes_only(any_db: Any) -> None:
    await seed(any_db)
    db = scoped(any_db, "app", ["app", "shared"])
    ks = sorted(d["k"] for d in await db.items.find({}).to_list(None))
    assert ks == [0, 1, 2, 10, 11]  # "other" is invisible
    assert await db.items.count_documents({}) == 5
    assert await db.items.count_documents({"k": {"$gte": 10}}) == 2
    assert await db.items.find_one({"k": 20}) is None
    assert (await db.items.find_one({"k": 10}))["experiment_id"] == "shared"
    assert sorted(await db.items.distinct("experiment_id")) == ["app", "shared"]
    assert sorted(await db.items.distinct("k", {"k": {"$lt": 2}})) == [0, 1]
    # A filter naming a read scope is honoured; naming another slug finds nothing.
    assert await db.items.count_documents({"experiment_id": "shared"}) == 2
    assert await db.items.count_documents({"experiment_id": "other"}) == 0


@pytest.mark.asyncio
async def test_find_options_pass_through_and_cursor_is_wrapped(any_db: Any) -> None:
    await seed(any_db)
    db = scoped(any_db, "app")
    cursor = db.items.find({}, {"_id": 0, "k": 1}, sort=[("k", -1)], skip=1, limit=1)
    assert isinstance(cursor, ScopedCursor)
    assert await cursor.to_list(None) == [{"k": 1}]
    chained = db.items.find({}).sort("k", 1).skip(1).limit(2).batch_size(1)
    assert [d["k"] async for d in chained] == [1, 2]
    one = await db.items.find_one({"k": 2}, {"_id": 0})
    assert one == {"k": 2, "experiment_id": "app"}
    by_id = await db.items.find_one({"k": 0})
    assert (await db.items.find_one(by_id["_id"]))["k"] == 0  # find_one(oid) like pymongo
    assert sorted(await db.items.find({}).distinct("k")) == [0, 1, 2]


# -- updates, replaces, deletes: own documents only ---------------------------------


@pytest.mark.asyncio
async def test_updates_and_deletes_touch_own_documents_only(any_db: Any) -> None:
    """Spec defect fixed: a read scope no longer allows modifying that slug's data."""
    await seed(any_db)
    db = scoped(any_db, "app", ["app", "shared"])
    r = await db.items.update_many({}, {"$set": {"seen": True}})
    assert r.matched_count == 3
    r = await db.items.update_one({"k": 10}, {"$set": {"seen": True}})
    assert r.matched_count == 0
    r = await db.items.delete_many({"k": {"$gte": 10}})
    assert r.deleted_count == 0
    r = await db.items.delete_one({"k": 0})
    assert r.deleted_count == 1
    assert await stored(any_db, "app_items", {"seen": True}) == [
        {"k": 1, "experiment_id": "app", "seen": True},
        {"k": 2, "experiment_id": "app", "seen": True},
    ]
    assert await any_db["app_items"].count_documents({"experiment_id": "shared"}) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "how",
    [
        "update_one",
        "update_many",
        "update_pipeline",
        "replace_one",
        "find_one_and_update",
        "find_one_and_replace",
        "bulk_update",
        "bulk_replace",
    ],
)
async def test_upserts_set_experiment_id(any_db: Any, how: str) -> None:
    db = scoped(any_db, "app")
    items = db.items
    flt = {"k": 7}
    if how == "update_one":
        await items.update_one(flt, {"$set": {"v": 1}}, upsert=True)
    elif how == "update_many":
        await items.update_many(flt, {"$inc": {"v": 1}}, upsert=True)
    elif how == "update_pipeline":
        await items.update_one(flt, [{"$set": {"v": 1}}], upsert=True)
    elif how == "replace_one":
        await items.replace_one(flt, {"k": 7, "v": 1}, upsert=True)
    elif how == "find_one_and_update":
        doc = await items.find_one_and_update(
            flt, {"$set": {"v": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc["experiment_id"] == "app"
    elif how == "find_one_and_replace":
        await items.find_one_and_replace(flt, {"k": 7, "v": 1}, upsert=True)
    elif how == "bulk_update":
        await items.bulk_write([UpdateOne(flt, {"$set": {"v": 1}}, upsert=True)])
    else:
        await items.bulk_write([ReplaceOne(flt, {"k": 7, "v": 1}, upsert=True)])
    docs = await stored(any_db, "app_items")
    assert len(docs) == 1 and docs[0]["experiment_id"] == "app" and docs[0]["k"] == 7


@pytest.mark.asyncio
async def test_upsert_with_own_experiment_id_in_filter(any_db: Any) -> None:
    db = scoped(any_db, "app")
    await db.items.update_one({"experiment_id": "app", "k": 1}, {"$set": {"v": 1}}, upsert=True)
    assert await stored(any_db, "app_items") == [{"experiment_id": "app", "k": 1, "v": 1}]


@pytest.mark.asyncio
async def test_replace_keeps_experiment_id(any_db: Any) -> None:
    await seed(any_db)
    db = scoped(any_db, "app", ["app", "shared"])
    r = await db.items.replace_one({"k": 1}, {"k": 1, "v": "new", "experiment_id": "shared"})
    assert r.modified_count == 1
    assert await stored(any_db, "app_items", {"k": 1}) == [
        {"k": 1, "v": "new", "experiment_id": "app"}
    ]
    r = await db.items.replace_one({"k": 10}, {"k": 10, "v": "new"})
    assert r.matched_count == 0


@pytest.mark.asyncio
async def test_find_one_and_family_is_scoped(any_db: Any) -> None:
    await seed(any_db)
    db = scoped(any_db, "app", ["app", "shared"])
    assert await db.items.find_one_and_update({"k": 10}, {"$set": {"v": 1}}) is None
    assert await db.items.find_one_and_delete({"k": 11}) is None
    assert await db.items.find_one_and_replace({"k": 10}, {"v": 2}) is None
    got = await db.items.find_one_and_update(
        {}, {"$set": {"v": 1}}, sort=[("k", -1)], return_document=ReturnDocument.AFTER
    )
    assert got["k"] == 2 and got["v"] == 1
    assert (await db.items.find_one_and_delete({}, sort=[("k", 1)]))["k"] == 0
    replaced = await db.items.find_one_and_replace(
        {"k": 1}, {"k": 1, "r": True}, return_document=ReturnDocument.AFTER
    )
    assert replaced["experiment_id"] == "app" and replaced["r"] is True
    assert await any_db["app_items"].count_documents({"experiment_id": "shared"}) == 2


@pytest.mark.asyncio
async def test_bulk_write_rewrites_every_operation(any_db: Any) -> None:
    await seed(any_db)
    db = scoped(any_db, "app", ["app", "shared"])
    result = await db.items.bulk_write(
        [
            InsertOne({"k": 5, "experiment_id": "shared"}),
            UpdateOne({"k": 5}, {"$set": {"u": 1}}),
            UpdateMany({}, {"$set": {"all": 1}}),
            ReplaceOne({"k": 2}, {"k": 2, "replaced": True}),
            DeleteOne({"k": 0}),
            DeleteMany({"k": {"$gte": 10}}),  # the shared docs are not ours: untouched
        ]
    )
    assert result.inserted_count == 1 and result.deleted_count == 1
    assert result.matched_count == 1 + 4 + 1
    assert await any_db["app_items"].count_documents({"experiment_id": "shared"}) == 2
    # UpdateMany reached the 4 own documents only; k=2 was then replaced, k=0 deleted.
    assert await any_db["app_items"].count_documents({"all": 1}) == 2
    assert await any_db["app_items"].count_documents({"all": 1, "experiment_id": "app"}) == 2
    assert (await any_db["app_items"].find_one({"k": 5}))["experiment_id"] == "app"


# -- aggregation ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_aggregate_prepends_scope_and_never_mutates_the_pipeline(any_db: Any) -> None:
    await seed(any_db)
    db = scoped(any_db, "app", ["app", "shared"])
    pipeline: list[dict[str, Any]] = [{"$group": {"_id": "$experiment_id", "n": {"$sum": 1}}}]
    before = copy.deepcopy(pipeline)
    rows = await (await db.items.aggregate(pipeline)).to_list(None)
    assert {r["_id"]: r["n"] for r in rows} == {"app": 3, "shared": 2}
    assert pipeline == before
    assert await (await db.items.aggregate([])).to_list(None) != []


@pytest.mark.asyncio
async def test_aggregate_lookup_union_graph_are_scoped(any_db: Any) -> None:
    await seed(any_db)
    db = scoped(any_db, "app", ["app", "shared"])
    looked = await (
        await db.items.aggregate(
            [
                {"$match": {"k": 0}},
                {"$lookup": {"from": "shared_items", "pipeline": [], "as": "j"}},
                {"$lookup": {"from": "shared_items", "localField": "k", "foreignField": "k",
                             "as": "none"}},
            ]
        )
    ).to_list(None)  # fmt: skip
    assert [d["k"] for d in looked[0]["j"]] == [30, 31]  # k=40 belongs to "other"
    union = await (
        await db.items.aggregate([{"$match": {"k": 0}}, {"$unionWith": "shared_items"}])
    ).to_list(None)
    assert sorted(d["k"] for d in union) == [0, 30, 31]
    graph = await (
        await db.items.aggregate(
            [
                {"$match": {"k": 0}},
                {"$graphLookup": {"from": "shared_items", "startWith": 40,
                                  "connectFromField": "k", "connectToField": "k", "as": "g"}},
            ]
        )
    ).to_list(None)  # fmt: skip
    assert graph[0]["g"] == []
    faceted = await (await db.items.aggregate([{"$facet": {"n": [{"$count": "n"}]}}])).to_list(None)
    assert faceted == [{"n": [{"n": 5}]}]


def test_vector_search_scope_is_merged_into_its_filter() -> None:
    """SecantusDB has no $vectorSearch (code 115): checked on the rewritten pipeline."""
    stage = {"index": "v", "path": "e", "queryVector": [0.1], "numCandidates": 10, "limit": 2}
    pipeline = [{"$vectorSearch": {**stage, "filter": {"lang": "en"}}}, {"$project": {"e": 0}}]
    before = copy.deepcopy(pipeline)
    out = scope_pipeline(pipeline, ["app", "shared"])
    assert out[0]["$vectorSearch"]["filter"] == {
        "$and": [{"lang": "en"}, {"experiment_id": {"$in": ["app", "shared"]}}]
    }
    assert out[1] == {"$project": {"e": 0}} and len(out) == 2
    assert pipeline == before  # the reference mutated it: reuse nested $and's
    again = scope_pipeline(pipeline, ["app", "shared"])
    assert again == out
    plain = scope_pipeline([{"$vectorSearch": stage}], ["app"])
    assert plain[0]["$vectorSearch"]["filter"] == {"experiment_id": "app"}  # one scope: equality


def test_geo_near_scope_is_merged_into_its_query() -> None:
    out = scope_pipeline([{"$geoNear": {"near": [0, 0], "distanceField": "d"}}], ["app"])
    assert out == [
        {"$geoNear": {"near": [0, 0], "distanceField": "d",
                      "query": {"experiment_id": "app"}}}
    ]  # fmt: skip


@pytest.mark.asyncio
async def test_geo_near_runs_scoped_on_the_server(any_db: Any) -> None:
    await any_db["app_places"].insert_many(
        [{"p": [0, 0], "experiment_id": "app"}, {"p": [0, 1], "experiment_id": "other"}]
    )
    await any_db["app_places"].create_index([("p", "2d")])
    db = scoped(any_db, "app")
    rows = await (
        await db.places.aggregate([{"$geoNear": {"near": [0, 0], "distanceField": "d"}}])
    ).to_list(None)
    assert [r["experiment_id"] for r in rows] == ["app"]


# -- foreign collections are read-only ------------------------------------------------


@pytest.mark.asyncio
async def test_foreign_collection_is_read_only(any_db: Any) -> None:
    await seed(any_db)
    db = scoped(any_db, "app", ["app", "shared"])
    foreign = db.collection("items", owner="shared")
    assert sorted(d["k"] for d in await foreign.find({}).to_list(None)) == [30, 31]
    attempts = [
        foreign.insert_one({"k": 1}),
        foreign.insert_many([{"k": 1}]),
        foreign.update_one({}, {"$set": {"x": 1}}),
        foreign.update_many({}, {"$set": {"x": 1}}),
        foreign.replace_one({}, {"x": 1}),
        foreign.delete_one({}),
        foreign.delete_many({}),
        foreign.find_one_and_update({}, {"$set": {"x": 1}}),
        foreign.find_one_and_replace({}, {"x": 1}),
        foreign.find_one_and_delete({}),
        foreign.bulk_write([DeleteMany({})]),
    ]
    for attempt in attempts:
        with pytest.raises(ScopeViolation, match="read-only"):
            await attempt
    assert len(await stored(any_db, "shared_items")) == 3


# -- refused operations and housekeeping ----------------------------------------------


@pytest.mark.asyncio
async def test_unscopable_operations_are_refused(any_db: Any) -> None:
    db = scoped(any_db, "app")
    with pytest.raises(ScopeViolation, match="count_documents"):
        await db.items.estimated_document_count()
    for name in ("watch", "drop", "create_index", "list_indexes", "rename", "with_options"):
        with pytest.raises(ScopeViolation):
            getattr(db.items, name)()


@pytest.mark.asyncio
async def test_experiment_id_index_is_ensured_on_first_use(any_db: Any) -> None:
    guard = IndexGuard()
    db = ScopedDatabase(any_db, ["app"], "app", index_guard=guard)
    await db.items.insert_one({"k": 1})
    names = [
        i["name"]
        for i in await (await maybe_await(any_db["app_items"].list_indexes())).to_list(None)
    ]
    assert EXPERIMENT_ID_INDEX_NAME in names
    assert guard.is_done(any_db["app_items"].full_name)
    db2 = ScopedDatabase(any_db, ["app"], "app", index_guard=guard)
    await db2.other.count_documents({})
    await db2.ensure_indexes()
    assert guard.stats.checks == 2 and guard.stats.creates == 2


@pytest.mark.asyncio
async def test_auto_index_off_means_no_index_work(any_db: Any) -> None:
    db = ScopedDatabase(any_db, ["app"], "app", auto_index=False)
    for _ in range(5):
        await db.items.find_one({"a": 1})
    assert db.items.auto_index_stats is None
    assert await db.items.ensure_scope_index() is True
    assert "app_items" not in await any_db.list_collection_names()


@pytest.mark.asyncio
async def test_owned_collection_names_are_exact(any_db: Any) -> None:
    for name in ("store_items", "store_factory_x", "store_factory_parts", "storex_y", "store"):
        await any_db[name].insert_one({"k": 1})
    db = scoped(any_db, "store")
    assert await db.owned_collection_names() == [
        "store_factory_parts", "store_factory_x", "store_items",
    ]  # fmt: skip
    assert await db.owned_collection_names(["store_factory"]) == ["store_items"]
    registered = scoped(any_db, "store", known_slugs=["store", "store_factory"])
    assert await registered.owned_collection_names() == ["store_items"]
    with pytest.raises(ScopeViolation, match="store_factory"):
        registered.collection("factory_x")
    assert registered.collection("items").name == "store_items"


@pytest.mark.asyncio
async def test_direct_construction_derives_the_owner(any_db: Any) -> None:
    foreign = ScopedCollection(any_db["shared_items"], ["app", "shared"], "app")
    assert foreign.owner == "shared" and not foreign.writable
    own = ScopedCollection(any_db["app_items"], ["shared"], "app", index_guard=IndexGuard())
    assert own.owner == "app" and own.writable and own.read_scopes == ("app", "shared")
    with pytest.raises(ScopeViolation, match="read scope"):
        ScopedCollection(any_db["other_items"], ["app"], "app")
    with pytest.raises(TypeError, match="list of slugs"):
        ScopedDatabase(any_db, "app", "app")  # a string would be read as ["a", "p", "p"]


def test_update_rewrites_leave_the_caller_objects_alone() -> None:
    update = {"$set": {"a": 1}, "$setOnInsert": {"b": 2}}
    before = copy.deepcopy(update)
    out = scope_update(update, "app", upsert=True)
    assert out == {"$set": {"a": 1}, "$setOnInsert": {"b": 2, "experiment_id": "app"}}
    assert update == before
    pipeline = [{"$set": {"a": 1}}]
    assert scope_update(pipeline, "app") == [
        {"$set": {"a": 1}},
        {"$set": {"experiment_id": "app"}},
    ]
    assert pipeline == [{"$set": {"a": 1}}]
    # Setting the writer's own experiment_id on insert is harmless and allowed.
    assert scope_update({"$setOnInsert": {"experiment_id": "app"}}, "app", upsert=True) == {
        "$setOnInsert": {"experiment_id": "app"}
    }


# -- knob variants: vector_scope (report 5.3) and wrapper_cache (report 2.2) ---------------


def test_vector_scope_in_place_mutates_the_callers_pipeline_and_copy_does_not() -> None:
    stage = {"index": "v", "path": "e", "queryVector": [0.1], "numCandidates": 5, "limit": 2}
    pipeline = [{"$vectorSearch": dict(stage)}]
    first = scope_pipeline(pipeline, ["app"], in_place=False)
    assert pipeline == [{"$vectorSearch": stage}]  # the caller's object is untouched
    baseline = [{"$vectorSearch": dict(stage)}]
    once = scope_pipeline(baseline, ["app"], in_place=True)
    twice = scope_pipeline(baseline, ["app"], in_place=True)  # the reused object nests
    assert once == first  # same scoped result either way
    assert baseline[0]["$vectorSearch"]["filter"] == twice[0]["$vectorSearch"]["filter"]
    assert "$and" in twice[0]["$vectorSearch"]["filter"]
    assert twice != first


@pytest.mark.asyncio
async def test_wrapper_cache_variants_give_the_same_results(db) -> None:
    cached = ScopedDatabase(db, ["app"], "app", index_guard=None)
    uncached = ScopedDatabase(db, ["app"], "app", index_guard=None, cache_wrappers=False)
    assert cached.collection("x") is cached.collection("x")
    assert uncached.collection("x") is not uncached.collection("x")
    await cached.collection("x").insert_one({"v": 1})
    assert (await uncached.collection("x").find_one({"v": 1}))["v"] == 1
