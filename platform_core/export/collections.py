"""Which collections belong to an experiment, by exact rule (never by prefix), and dumps.

The reference dumped and dropped every collection whose name started with ``<slug>_``,
so exporting or deleting ``store`` also took ``store_factory_*`` (spec 8.5). The rule here:

A collection ``C`` belongs to experiment ``S`` if and only if

1. ``C == S + "_" + base`` with a valid base name, and no *longer* known slug claims it
   (:func:`platform_core.db.slugs.owner_of` over every slug that has a config or a folder),
   and
2. ``base`` is declared by ``S``'s manifest (``managed_indexes``/``collection_settings``)
   or ``C`` holds at least one document with ``experiment_id == S``.

Rule 2 is what keeps ``store_factory_items`` out of ``store``'s export even after the
``store_factory`` experiment was deleted (its documents still carry
``experiment_id: "store_factory"``). Dumps then contain only documents with
``experiment_id == S``; a delete drops a collection only if it holds no other experiment's
documents (otherwise it deletes just ``S``'s documents).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson import json_util

from platform_core.db.slugs import owner_of, validate_slug

SCOPE_FIELD = "experiment_id"
PLATFORM_COLLECTIONS = frozenset({"users", "experiments_config", "export_logs", "casbin_rule"})
_JSON_OPTIONS = json_util.JSONOptions(json_mode=json_util.JSONMode.RELAXED, tz_aware=True)


def declared_base_names(config: dict[str, Any] | None) -> set[str]:
    config = config or {}
    names: set[str] = set()
    for key in ("managed_indexes", "collection_settings"):
        value = config.get(key)
        if isinstance(value, dict):
            names.update(str(k) for k in value)
    return names


async def owned_collections(
    db: Any,
    slug: str,
    *,
    known_slugs: Iterable[str],
    config: dict[str, Any] | None,
) -> list[str]:
    """Names of the collections that belong to ``slug`` under the rule above."""
    validate_slug(slug)
    slugs = {slug, *known_slugs}
    declared = declared_base_names(config)
    names = await db.list_collection_names()
    owned: list[str] = []
    for name in sorted(names):
        if name in PLATFORM_COLLECTIONS or owner_of(name, slugs) != slug:
            continue
        base = name[len(slug) + 1 :]
        if base in declared:
            owned.append(name)
            continue
        if await db[name].find_one({SCOPE_FIELD: slug}, {"_id": 1}) is not None:
            owned.append(name)
    return owned


async def dump_collections(
    db: Any, slug: str, names: Iterable[str], *, limit: int
) -> dict[str, list[dict[str, Any]]]:
    """The experiment's own documents of each collection (at most ``limit`` each)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        cursor = db[name].find({SCOPE_FIELD: slug}).limit(limit)
        out[name] = [doc async for doc in cursor]
    return out


def to_json(value: Any) -> str:
    """Extended JSON (relaxed): ObjectIds and dates survive a round trip."""
    return json_util.dumps(value, json_options=_JSON_OPTIONS, indent=2, sort_keys=True)


async def drop_owned(db: Any, slug: str, names: Iterable[str]) -> dict[str, str]:
    """Drop each collection, or only ``slug``'s documents if others share it."""
    report: dict[str, str] = {}
    for name in names:
        coll = db[name]
        foreign = await coll.find_one({SCOPE_FIELD: {"$exists": True, "$ne": slug}}, {"_id": 1})
        if foreign is None:
            await coll.drop()
            report[name] = "dropped"
        else:
            result = await coll.delete_many({SCOPE_FIELD: slug})
            report[name] = f"deleted {result.deleted_count} documents (shared collection kept)"
    return report
