"""Attempts to read or write outside an experiment's scope, against the real server.

The attacker is the experiment ``mallory`` (read scopes: only itself). Its victims:

* ``alice``: collection ``alice_notes``, plus documents tagged ``alice`` that sit in
  ``mallory_notes`` (what a shared physical name or a stray write leaves behind);
* ``mallory_corp``: a slug that *starts with* the attacker's slug, so its collection
  ``mallory_corp_notes`` is also ``mallory`` + ``_corp_notes`` (the prefix collision of
  PLATFORM_SPEC 8.5).

Every attempt is either **refused** (an exception before anything reaches the server:
``ScopeViolation``, or ``ValueError``/``TypeError``/``AttributeError`` for bad names and
missing escape hatches) or **contained** (it may run, or fail on the server, but afterwards
the victims' documents are byte-for-byte unchanged, no new document carries a victim's
``experiment_id`` or lacks one, no victim collection appeared, and nothing returned holds a
victim's document). Each case runs once per driver.
"""

from __future__ import annotations

import copy
import inspect
import pickle
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo.operations import DeleteMany, InsertOne, ReplaceOne, UpdateMany, UpdateOne

from platform_core.db import ScopedDatabase, ScopeViolation
from platform_core.db.indexes import IndexGuard

ATTACKER = "mallory"
VICTIMS = ("alice", "mallory_corp")
REFUSALS = (ScopeViolation, ValueError, TypeError, AttributeError)
JS = {"body": "function() { return true; }", "args": [], "lang": "js"}


@dataclass
class Ctx:
    db: ScopedDatabase  # mallory, reads only mallory
    reader: ScopedDatabase  # mallory, may also read alice
    raw: Any


Attempt = Callable[[Ctx], Any]
CASES: list[tuple[str, str, Attempt]] = []


def refused(name: str, fn: Attempt) -> None:
    CASES.append((name, "refused", fn))


def contained(name: str, fn: Attempt) -> None:
    CASES.append((name, "contained", fn))


def find(coll: Any, flt: Any, *args: Any, **kw: Any) -> Awaitable[list[Any]]:
    return coll.find(flt, *args, **kw).to_list(None)


async def none_counted(aw: Awaitable[int]) -> list[str]:
    """A count the attacker should get as 0; anything else is reported as a leak."""
    n = await aw
    return [f"secret-count-{n}"] if n else []


async def agg(coll: Any, pipeline: list[Any], **kw: Any) -> list[Any]:
    return await (await coll.aggregate(pipeline, **kw)).to_list(None)


# One attempt per line: this table reads better unwrapped.
# fmt: off
# -- filters and reads ------------------------------------------------------------------
contained("find_other_experiment_id", lambda c: find(c.db.notes, {"experiment_id": "alice"}))
contained("find_or_match_all", lambda c: find(c.db.notes, {"$or": [{"experiment_id": "alice"}, {}]}))
contained("find_nor_own_scope", lambda c: find(c.db.notes, {"$nor": [{"experiment_id": ATTACKER}]}))
contained("find_in_all_slugs", lambda c: find(c.db.notes, {"experiment_id": {"$in": [*VICTIMS, ATTACKER]}}))
contained("find_experiment_id_exists_false", lambda c: find(c.db.notes, {"experiment_id": {"$exists": False}}))
contained("find_expr_ne", lambda c: find(c.db.notes, {"$expr": {"$ne": ["$experiment_id", ATTACKER]}}))
contained("find_one_regex_any", lambda c: c.db.notes.find_one({"experiment_id": {"$regex": "^a"}}))
contained("count_ne_own", lambda c: none_counted(c.db.notes.count_documents({"experiment_id": {"$ne": ATTACKER}})))
contained("count_victim_secret", lambda c: none_counted(c.db.notes.count_documents({"secret": {"$exists": True}})))
contained("distinct_experiment_id", lambda c: c.db.notes.distinct("experiment_id"))
contained("cursor_distinct", lambda c: c.db.notes.find({}).distinct("secret"))
refused("find_one_where", lambda c: c.db.notes.find_one({"$where": "true"}))
refused("find_expr_function", lambda c: find(c.db.notes, {"$expr": {"$function": JS}}))
refused("find_nested_where", lambda c: find(c.db.notes, {"$and": [{"$or": [{"$where": "1"}]}]}))
refused("projection_function", lambda c: find(c.db.notes, {}, {"x": {"$function": JS}}))
refused("count_where", lambda c: c.db.notes.count_documents({"$where": "true"}))
refused("estimated_document_count", lambda c: c.db.notes.estimated_document_count())
refused("watch_change_stream", lambda c: c.db.notes.watch())

# -- collection names -------------------------------------------------------------------
refused("foreign_owner_not_in_scope", lambda c: c.db.collection("notes", owner="alice"))
refused("foreign_owner_prefix_slug", lambda c: c.db.collection("notes", owner="mallory_corp"))
refused("owner_path_traversal", lambda c: c.db.collection("notes", owner="../alice"))
contained("verbatim_other_slug_name", lambda c: find(c.db["alice_notes"], {}))
contained("get_collection_verbatim", lambda c: find(c.db.get_collection("alice_notes"), {}))
refused("name_dotdot_slash", lambda c: c.db["../alice_notes"])
refused("name_dot_namespace", lambda c: c.db["x.alice_notes"])
refused("name_dollar_cmd", lambda c: c.db["$cmd"])
refused("name_fullwidth_lookalike", lambda c: c.db["ａlice_notes"])
refused("name_cyrillic_lookalike", lambda c: c.db["аlice_notes"])
refused("name_uppercase", lambda c: c.db["Notes"])
refused("name_empty", lambda c: c.db[""])
refused("name_nul_byte", lambda c: c.db["notes\x00"])
refused("name_trailing_newline", lambda c: c.db["notes\n"])
refused("name_system_dot", lambda c: c.db["system.users"])
refused("attribute_uppercase", lambda c: c.db.Notes)
contained("prefix_slug_read", lambda c: find(c.db["corp_notes"], {}))
contained("prefix_slug_update", lambda c: c.db["corp_notes"].update_many({}, {"$set": {"p": 1}}))
contained("prefix_slug_delete", lambda c: c.db["corp_notes"].delete_many({}))
contained("prefix_slug_insert", lambda c: c.db["corp_notes"].insert_one({"experiment_id": "mallory_corp"}))
refused(
    "prefix_slug_with_registry",
    lambda c: ScopedDatabase(c.raw, [ATTACKER], ATTACKER, known_slugs=[*VICTIMS])["corp_notes"],
)

# -- escape hatches to the unscoped database -------------------------------------------
refused("db_database_attr", lambda c: c.db.database)
refused("db_client_attr", lambda c: c.db.client)
refused("db_raw_attr", lambda c: c.db.raw)
refused("db_index_manager_attr", lambda c: c.db.index_manager)
refused("db_command", lambda c: c.db.command("dropDatabase"))
refused("db_drop_collection", lambda c: c.db.drop_collection("alice_notes"))
refused("db_private_attr", lambda c: c.db._db)
refused("db_vars", lambda c: vars(c.db))
refused("db_pickle", lambda c: pickle.dumps(c.db))
refused("db_reduce_ex", lambda c: c.db.__reduce_ex__(2))
refused("coll_getstate", lambda c: c.db.notes.__getstate__())
refused("coll_copy", lambda c: copy.copy(c.db.notes))
refused("coll_database_attr", lambda c: c.db.notes.database)
refused("coll_private_collection", lambda c: c.db.notes._collection)
refused("coll_delegate", lambda c: c.db.notes.delegate)
refused("coll_with_options", lambda c: c.db.notes.with_options())
refused("coll_drop", lambda c: c.db.notes.drop())
refused("coll_rename", lambda c: c.db.notes.rename("alice_notes"))
refused("cursor_collection", lambda c: c.db.notes.find({}).collection)
refused("cursor_session", lambda c: c.db.notes.find({}).session)
refused("cursor_where", lambda c: c.db.notes.find({}).where("true"))

# -- inserts, updates, upserts ----------------------------------------------------------
contained("insert_with_victim_id", lambda c: c.db.notes.insert_one({"experiment_id": "alice", "k": 9}))
contained("insert_many_with_victim_id", lambda c: c.db.notes.insert_many([{"experiment_id": "alice"}]))
contained("update_victim_filter", lambda c: c.db.notes.update_many({"experiment_id": "alice"}, {"$set": {"p": 1}}))
contained("update_or_filter", lambda c: c.db.notes.update_many({"$or": [{"experiment_id": "alice"}, {"k": 100}]}, {"$set": {"p": 1}}))
refused("update_set_experiment_id", lambda c: c.db.notes.update_one({}, {"$set": {"experiment_id": "alice"}}))
refused("update_unset_experiment_id", lambda c: c.db.notes.update_one({}, {"$unset": {"experiment_id": ""}}))
refused("update_rename_from", lambda c: c.db.notes.update_one({}, {"$rename": {"experiment_id": "x"}}))
refused("update_rename_to", lambda c: c.db.notes.update_one({}, {"$rename": {"k": "experiment_id"}}))
refused("update_set_subpath", lambda c: c.db.notes.update_one({}, {"$set": {"experiment_id.x": 1}}))
refused("update_inc", lambda c: c.db.notes.update_one({}, {"$inc": {"experiment_id": 1}}))
refused("update_push", lambda c: c.db.notes.update_one({}, {"$push": {"experiment_id": "alice"}}))
refused("update_current_date", lambda c: c.db.notes.update_one({}, {"$currentDate": {"experiment_id": True}}))
refused("update_max", lambda c: c.db.notes.update_many({}, {"$max": {"experiment_id": "zzz"}}))
refused("upsert_set_on_insert_victim", lambda c: c.db.notes.update_one({"k": 5}, {"$setOnInsert": {"experiment_id": "alice"}}, upsert=True))
refused("update_unknown_operator", lambda c: c.db.notes.update_one({}, {"$foo": {"a": 1}}))
refused("update_replacement_style", lambda c: c.db.notes.update_one({}, {"experiment_id": "alice"}))
contained("upsert_victim_filter", lambda c: c.db.notes.update_one({"experiment_id": "alice", "k": 5}, {"$set": {"v": 1}}, upsert=True))
contained("upsert_in_filter", lambda c: c.db.notes.update_one({"experiment_id": {"$in": ["alice"]}, "k": 6}, {"$set": {"v": 1}}, upsert=True))
refused("pipeline_set_experiment_id", lambda c: c.db.notes.update_one({}, [{"$set": {"experiment_id": "alice"}}]))
refused("pipeline_add_fields", lambda c: c.db.notes.update_many({}, [{"$addFields": {"experiment_id": "alice"}}]))
refused("pipeline_unset", lambda c: c.db.notes.update_one({}, [{"$unset": ["k", "experiment_id"]}]))
refused("pipeline_project_out", lambda c: c.db.notes.update_one({}, [{"$project": {"experiment_id": 0}}]))
refused("pipeline_replace_with_literal", lambda c: c.db.notes.update_one({}, [{"$replaceWith": {"experiment_id": "alice"}}]))
refused("pipeline_function", lambda c: c.db.notes.update_one({}, [{"$set": {"x": {"$function": JS}}}]))
refused("pipeline_lookup_stage", lambda c: c.db.notes.update_one({}, [{"$lookup": {"from": "alice_notes", "as": "x", "pipeline": []}}]))
contained("pipeline_project_inclusion", lambda c: c.db.notes.update_many({}, [{"$project": {"k": 1}}]))
contained(
    "pipeline_computed_key",  # experiment_id built from strings, not a key: the final $set wins
    lambda c: c.db.notes.update_many({}, [{"$replaceWith": {"$mergeObjects": [
        "$$ROOT", {"$arrayToObject": [[["experiment_id", "alice"]]]}]}}]),
)
contained("pipeline_upsert", lambda c: c.db.notes.update_one({"k": 77}, [{"$set": {"v": 1}}], upsert=True))
contained("replace_with_victim_id", lambda c: c.db.notes.replace_one({"k": 100}, {"experiment_id": "alice", "k": 100}))
contained("replace_victim_doc", lambda c: c.db.notes.replace_one({"k": 200}, {"k": 200, "x": 1}))
contained("replace_upsert_victim_filter", lambda c: c.db.notes.replace_one({"experiment_id": "alice"}, {"k": 1}, upsert=True))
refused("replace_with_operators", lambda c: c.db.notes.replace_one({}, {"$set": {"experiment_id": "alice"}}))
contained("foau_victim", lambda c: c.db.notes.find_one_and_update({"k": 200}, {"$set": {"p": 1}}))
contained("foau_upsert_victim", lambda c: c.db.notes.find_one_and_update({"experiment_id": "alice"}, {"$set": {"p": 1}}, upsert=True))
refused("foau_set_experiment_id", lambda c: c.db.notes.find_one_and_update({}, {"$set": {"experiment_id": "alice"}}))
contained("foar_victim_id", lambda c: c.db.notes.find_one_and_replace({}, {"experiment_id": "alice"}))
contained("foad_victim", lambda c: c.db.notes.find_one_and_delete({"experiment_id": "alice"}))
contained("delete_victim_filter", lambda c: c.db.notes.delete_many({"experiment_id": "alice"}))
contained("delete_or_filter", lambda c: c.db.notes.delete_many({"$or": [{"experiment_id": "alice"}, {"k": {"$gte": 0}}]}))
contained("delete_one_victim_doc", lambda c: c.db.notes.delete_one({"k": 200}))

# -- bulk_write ------------------------------------------------------------------------


class SneakyInsert(InsertOne):  # type: ignore[type-arg]
    __slots__ = ()


refused("bulk_mixed_set_experiment_id", lambda c: c.db.notes.bulk_write(
    [InsertOne({"k": 1}), UpdateMany({}, {"$set": {"experiment_id": "alice"}})]))
refused("bulk_subclassed_op", lambda c: c.db.notes.bulk_write([SneakyInsert({"k": 1})]))
refused("bulk_plain_dict_op", lambda c: c.db.notes.bulk_write([{"insertOne": {"document": {}}}]))
contained("bulk_delete_victim", lambda c: c.db.notes.bulk_write([DeleteMany({"experiment_id": "alice"})]))
contained("bulk_upsert_victim", lambda c: c.db.notes.bulk_write([UpdateOne({"experiment_id": "alice"}, {"$set": {"p": 1}}, upsert=True)]))
contained("bulk_insert_namespace", lambda c: c.db.notes.bulk_write([InsertOne({"k": 3}, namespace=f"{c.raw.name}.alice_notes")]))
contained("bulk_replace_victim", lambda c: c.db.notes.bulk_write([ReplaceOne({"k": 200}, {"k": 200})]))

# -- read scope does not grant writes --------------------------------------------------
refused("reader_foreign_update", lambda c: c.reader.collection("notes", owner="alice").update_many({}, {"$set": {"p": 1}}))
refused("reader_foreign_delete", lambda c: c.reader.collection("notes", owner="alice").delete_many({}))
refused("reader_foreign_insert", lambda c: c.reader.collection("notes", owner="alice").insert_one({"k": 1}))
refused("reader_foreign_replace", lambda c: c.reader.collection("notes", owner="alice").replace_one({}, {"k": 1}))
refused("reader_foreign_bulk", lambda c: c.reader.collection("notes", owner="alice").bulk_write([DeleteMany({})]))
contained("reader_own_update_victim_docs", lambda c: c.reader.notes.update_many({"experiment_id": "alice"}, {"$set": {"p": 1}}))
contained("reader_own_delete_all", lambda c: c.reader.notes.delete_many({}))

# -- aggregation -----------------------------------------------------------------------
contained("agg_match_victim", lambda c: agg(c.db.notes, [{"$match": {"experiment_id": "alice"}}]))
contained("agg_empty_pipeline", lambda c: agg(c.db.notes, []))
refused("agg_lookup_victim_coll", lambda c: agg(c.db.notes, [{"$lookup": {"from": "alice_notes", "pipeline": [], "as": "x"}}]))
refused("agg_lookup_concise_victim", lambda c: agg(c.db.notes, [{"$lookup": {"from": "alice_notes", "localField": "k", "foreignField": "k", "as": "x"}}]))
contained("agg_lookup_own_coll", lambda c: agg(c.db.notes, [{"$lookup": {"from": "mallory_notes", "pipeline": [{"$match": {"experiment_id": "alice"}}], "as": "x"}}]))
contained("agg_lookup_prefix_coll", lambda c: agg(c.db.notes, [{"$lookup": {"from": "mallory_corp_notes", "pipeline": [], "as": "x"}}]))
refused("agg_lookup_other_db", lambda c: agg(c.db.notes, [{"$lookup": {"from": {"db": "admin", "coll": "alice_notes"}, "pipeline": [], "as": "x"}}]))
refused("agg_lookup_no_from", lambda c: agg(c.db.notes, [{"$lookup": {"pipeline": [{"$documents": [{}]}], "as": "x"}}]))
refused("agg_lookup_lookalike", lambda c: agg(c.db.notes, [{"$lookup": {"from": "ａlice_notes", "pipeline": [], "as": "x"}}]))
refused("agg_lookup_traversal", lambda c: agg(c.db.notes, [{"$lookup": {"from": "mallory_../alice_notes", "pipeline": [], "as": "x"}}]))
refused("agg_lookup_in_facet", lambda c: agg(c.db.notes, [{"$facet": {"f": [{"$lookup": {"from": "alice_notes", "pipeline": [], "as": "x"}}]}}]))
refused("agg_union_in_lookup", lambda c: agg(c.db.notes, [{"$lookup": {"from": "mallory_notes", "as": "x", "pipeline": [{"$unionWith": "alice_notes"}]}}]))
refused("agg_union_victim", lambda c: agg(c.db.notes, [{"$unionWith": "alice_notes"}]))
contained("agg_union_own_victim_docs", lambda c: agg(c.db.notes, [{"$unionWith": {"coll": "mallory_notes", "pipeline": [{"$match": {"experiment_id": "alice"}}]}}]))
refused("agg_graph_lookup_victim", lambda c: agg(c.db.notes, [{"$graphLookup": {"from": "alice_notes", "startWith": "$k", "connectFromField": "k", "connectToField": "k", "as": "g"}}]))
contained("agg_graph_lookup_own", lambda c: agg(c.db.notes, [{"$graphLookup": {"from": "mallory_notes", "startWith": 200, "connectFromField": "k", "connectToField": "k", "as": "g"}}]))
refused("agg_out_victim", lambda c: agg(c.db.notes, [{"$out": "alice_notes"}]))
refused("agg_out_own", lambda c: agg(c.db.notes, [{"$out": "mallory_copy"}]))
refused("agg_merge_victim", lambda c: agg(c.db.notes, [{"$merge": {"into": "alice_notes"}}]))
refused("agg_merge_in_facet", lambda c: agg(c.db.notes, [{"$facet": {"f": [{"$merge": "alice_notes"}]}}]))
refused("agg_accumulator", lambda c: agg(c.db.notes, [{"$group": {"_id": None, "a": {"$accumulator": {}}}}]))
refused("agg_function", lambda c: agg(c.db.notes, [{"$project": {"x": {"$function": JS}}}]))
refused("agg_where_in_lookup", lambda c: agg(c.db.notes, [{"$lookup": {"from": "mallory_notes", "as": "x", "pipeline": [{"$match": {"$where": "1"}}]}}]))
refused("agg_let_function", lambda c: agg(c.db.notes, [], let={"v": {"$function": JS}}))
refused("agg_coll_stats", lambda c: agg(c.db.notes, [{"$collStats": {"count": {}}}]))
refused("agg_index_stats", lambda c: agg(c.db.notes, [{"$indexStats": {}}]))
refused("agg_current_op", lambda c: agg(c.db.notes, [{"$currentOp": {}}]))
refused("agg_change_stream", lambda c: agg(c.db.notes, [{"$changeStream": {}}]))
refused("agg_documents", lambda c: agg(c.db.notes, [{"$documents": [{"experiment_id": "alice"}]}]))
refused("agg_search", lambda c: agg(c.db.notes, [{"$search": {"text": {"query": "a", "path": "k"}}}]))
refused("agg_unknown_stage", lambda c: agg(c.db.notes, [{"$foo": {}}]))
refused("agg_two_key_stage", lambda c: agg(c.db.notes, [{"$match": {}, "$out": "alice_notes"}]))
refused("agg_geo_near_later", lambda c: agg(c.db.notes, [{"$match": {}}, {"$geoNear": {"near": [0, 0], "distanceField": "d"}}]))
refused("agg_vector_search_later", lambda c: agg(c.db.notes, [{"$match": {}}, {"$vectorSearch": {}}]))
refused("agg_pipeline_not_list", lambda c: agg(c.db.notes, {"$match": {}}))  # type: ignore[arg-type]
# fmt: on


# --------------------------------------------------------------------------------------


async def seed(raw: Any) -> None:
    await raw["alice_notes"].insert_many(
        [{"k": i, "secret": f"secret-alice-{i}", "experiment_id": "alice"} for i in range(3)]
    )
    await raw["mallory_notes"].insert_many(
        [{"k": 100 + i, "experiment_id": ATTACKER} for i in range(2)]
        + [
            {"k": 200 + i, "secret": f"secret-alice-m{i}", "experiment_id": "alice"}
            for i in range(2)
        ]
    )
    await raw["mallory_corp_notes"].insert_many(
        [
            {"k": 300 + i, "secret": f"secret-corp-{i}", "experiment_id": "mallory_corp"}
            for i in range(2)
        ]
    )


async def snapshot(raw: Any) -> tuple[set[str], list[Any], list[Any]]:
    """(collection names, every victim document, every document's experiment_id)."""
    # list_collection_names is a database method: called on the raw test database only.
    names = set(await raw.list_collection_names())
    victims: list[Any] = []
    tags: list[Any] = []
    for name in sorted(names):
        docs = await raw[name].find({}).to_list(None)
        victims += [(name, d) for d in docs if d.get("experiment_id") in VICTIMS]
        tags += [d.get("experiment_id", "<missing>") for d in docs]
    victims.sort(key=repr)
    return names, victims, tags


def victim_docs_in(value: Any) -> list[Any]:
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("experiment_id") in VICTIMS or "secret" in item:
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, str):
            if item in VICTIMS or item.startswith("secret-"):
                found.append(item)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def test_enough_distinct_attempts() -> None:
    names = [name for name, _, _ in CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 30
    assert sum(1 for _, expect, _ in CASES if expect == "refused") >= 30


@pytest.mark.asyncio
@pytest.mark.parametrize(("name", "expect", "attempt"), CASES, ids=[c[0] for c in CASES])
async def test_escape_attempt(any_db: Any, name: str, expect: str, attempt: Attempt) -> None:
    await seed(any_db)
    guard = IndexGuard()
    ctx = Ctx(
        db=ScopedDatabase(any_db, [ATTACKER], ATTACKER, index_guard=guard),
        reader=ScopedDatabase(any_db, [ATTACKER, "alice"], ATTACKER, index_guard=guard),
        raw=any_db,
    )
    names_before, victims_before, _ = await snapshot(any_db)

    outcome: BaseException | None = None
    result: Any = None
    try:
        result = attempt(ctx)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        outcome = exc

    if expect == "refused":
        assert isinstance(outcome, REFUSALS), f"{name}: expected a refusal, got {outcome!r}"
        assert str(outcome), "refusals must explain themselves"
    names_after, victims_after, tags_after = await snapshot(any_db)
    assert victims_after == victims_before, f"{name}: a victim's documents changed"
    assert set(tags_after) <= {ATTACKER, *VICTIMS}, f"{name}: untagged or mis-tagged document"
    new_names = names_after - names_before
    assert all(n.startswith(ATTACKER + "_") for n in new_names), new_names
    assert not victim_docs_in(result), f"{name}: returned another experiment's documents"
