"""An async Casbin adapter on the platform's own MongoDB client.

Casbin's ``Enforcer`` is synchronous and keeps every rule in memory; only persistence
needs I/O. This adapter therefore does not plug into the enforcer (which would call it
synchronously); the provider awaits it explicitly:

* ``load_policy`` reads the whole ``casbin_rule`` collection once (startup / reload);
* ``add_policy`` / ``remove_policy`` write ONE row each: changes are incremental, never a
  rewrite of the collection (the reference's ``save_policy`` after every change rewrote
  all rows);
* ``save_policy`` (full rewrite) exists for completeness and explicit resets only.

Rows are ``{ptype, v0, v1, ...}`` like the common Casbin Mongo adapters, so an existing
``casbin_rule`` collection keeps working. A unique index on (ptype, v0..v5) makes
concurrent adds from several workers idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

COLLECTION = "casbin_rule"
FIELDS = ("v0", "v1", "v2", "v3", "v4", "v5")


def rule_to_doc(ptype: str, rule: Sequence[str]) -> dict[str, str]:
    if not 0 < len(rule) <= len(FIELDS):
        raise ValueError(f"a Casbin rule has 1..{len(FIELDS)} fields, got {len(rule)}")
    doc = {"ptype": ptype}
    doc.update({field: str(value) for field, value in zip(FIELDS, rule, strict=False)})
    return doc


def doc_to_rule(doc: dict[str, Any]) -> tuple[str, list[str]] | None:
    ptype = doc.get("ptype")
    if not isinstance(ptype, str) or not ptype:
        return None
    rule: list[str] = []
    for field in FIELDS:
        value = doc.get(field)
        if value is None or value == "":
            break
        rule.append(str(value))
    return (ptype, rule) if rule else None


class AsyncMongoCasbinAdapter:
    """Persistence for Casbin rules in ``<db>.casbin_rule``."""

    __slots__ = ("collection",)

    def __init__(self, db: Any, collection: str = COLLECTION) -> None:
        self.collection = db[collection]

    async def ensure_indexes(self) -> None:
        keys = [("ptype", ASCENDING)] + [(f, ASCENDING) for f in FIELDS]
        await self.collection.create_index(keys, name="casbin_rule_unique", unique=True)

    async def load_rules(self) -> list[tuple[str, list[str]]]:
        rules: list[tuple[str, list[str]]] = []
        async for doc in self.collection.find({}, {"_id": 0}):
            parsed = doc_to_rule(doc)
            if parsed is not None:
                rules.append(parsed)
        return rules

    async def add_policy(self, sec: str, ptype: str, rule: Sequence[str]) -> bool:
        """Persist one rule; True if it was new. Idempotent (upsert on the full row)."""
        doc = rule_to_doc(ptype, rule)
        query = {**doc, **{f: None for f in FIELDS[len(rule) :]}}
        try:
            result = await self.collection.update_one(query, {"$setOnInsert": doc}, upsert=True)
        except DuplicateKeyError:  # a concurrent writer inserted it first
            return False
        return result.upserted_id is not None

    async def remove_policy(self, sec: str, ptype: str, rule: Sequence[str]) -> bool:
        doc = rule_to_doc(ptype, rule)
        query = {**doc, **{f: None for f in FIELDS[len(rule) :]}}
        result = await self.collection.delete_many(query)
        return result.deleted_count > 0

    async def save_policy(self, rules: Iterable[tuple[str, Sequence[str]]]) -> None:
        """Replace the whole collection with ``rules`` (explicit resets only)."""
        docs = [rule_to_doc(ptype, rule) for ptype, rule in rules]
        await self.collection.delete_many({})
        if docs:
            await self.collection.insert_many(docs, ordered=False)
