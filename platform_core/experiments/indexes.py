"""Manifest-managed indexes (spec 2.7): apply ``managed_indexes`` and report their status.

Each ``managed_indexes[<base>]`` entry is applied to the physical collection
``<slug>_<base>`` under the index name ``<slug>_<name>``. Every index gets its own status;
one failing index never stops the others or the registration:

``created`` / ``exists`` / ``recreated`` (regular index whose keys changed) /
``unsupported`` (the server refuses the kind: SecantusDB answers code 67 for text indexes
and 115 for Atlas Search/Vector Search) / ``error`` (message kept).

Search indexes are submitted once and not waited for (the reference polled every 5 s for
up to 600 s inside a background task slot); :func:`index_status` reports their state.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from pymongo.errors import PyMongoError

from platform_core.db.client import maybe_await
from platform_core.db.slugs import physical_collection_name

log = logging.getLogger(__name__)

UNSUPPORTED_CODES = frozenset({67, 115, 59, 40324})  # CannotCreateIndex, CommandNotSupported...
_INDEX_OPTIONS = frozenset(
    {
        "unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "collation",
        "hidden", "weights", "default_language", "language_override", "textIndexVersion",
        "2dsphereIndexVersion", "bits", "min", "max", "wildcardProjection",
    }
)  # fmt: skip


@dataclass(slots=True)
class IndexResult:
    collection: str
    name: str
    type: str
    status: str
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _keys(index: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in index.get("keys") or []]


def _options(index: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (index.get("options") or {}).items() if k in _INDEX_OPTIONS}


def _is_unsupported(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    text = str(exc).lower()
    return code in UNSUPPORTED_CODES or "not supported" in text or "unsupported" in text


async def _existing(coll: Any) -> dict[str, dict[str, Any]]:
    cursor = await maybe_await(coll.list_indexes())
    return {spec["name"]: dict(spec) async for spec in cursor}


async def _apply_regular(
    coll: Any, coll_name: str, full_name: str, index: dict[str, Any], existing: dict[str, Any]
) -> IndexResult:
    keys = _keys(index)
    kind = index["type"]
    current = existing.get(full_name)
    status = "created"
    if current is not None:
        if list(current.get("key", {}).items()) == keys:
            return IndexResult(coll_name, full_name, kind, "exists")
        await coll.drop_index(full_name)
        status = "recreated"
    await coll.create_index(keys, name=full_name, **_options(index))
    return IndexResult(coll_name, full_name, kind, status)


async def _apply_search(coll: Any, coll_name: str, full_name: str, index: dict[str, Any],
                        definition: dict[str, Any], kind: str) -> IndexResult:  # fmt: skip
    from pymongo.operations import SearchIndexModel

    model = SearchIndexModel(definition=definition, name=full_name,
                             type="vectorSearch" if kind == "vectorSearch" else "search")  # fmt: skip
    await coll.create_search_index(model)
    return IndexResult(coll_name, full_name, index["type"], "submitted")


async def apply_index(db: Any, slug: str, base: str, index: dict[str, Any],
                      existing_cache: dict[str, dict[str, Any]]) -> list[IndexResult]:  # fmt: skip
    coll_name = physical_collection_name(slug, base)
    coll = db[coll_name]
    full_name = f"{slug}_{index['name']}"
    kind = index.get("type", "regular")
    try:
        if kind in ("regular", "ttl", "partial", "text", "geospatial"):
            if coll_name not in existing_cache:
                existing_cache[coll_name] = await _existing(coll)
            return [await _apply_regular(coll, coll_name, full_name, index,
                                         existing_cache[coll_name])]  # fmt: skip
        if kind in ("vectorSearch", "search"):
            return [await _apply_search(coll, coll_name, full_name, index,
                                        index.get("definition") or {}, kind)]  # fmt: skip
        if kind == "hybrid":
            hybrid = index.get("hybrid") or {}
            results = []
            for part, sub_kind in (("vector_index", "vectorSearch"), ("text_index", "search")):
                sub = hybrid.get(part) or {}
                suffix = "_vector" if sub_kind == "vectorSearch" else "_text"
                name = f"{slug}_{sub.get('name') or index['name'] + suffix}"
                try:
                    results.append(await _apply_search(coll, coll_name, name, index,
                                                       sub.get("definition") or {}, sub_kind))  # fmt: skip
                except PyMongoError as exc:
                    results.append(_failure(coll_name, name, kind, exc))
            return results
        return [IndexResult(coll_name, full_name, kind, "error", f"unknown index type {kind!r}")]
    except PyMongoError as exc:
        return [_failure(coll_name, full_name, kind, exc)]


def _failure(coll_name: str, name: str, kind: str, exc: BaseException) -> IndexResult:
    if _is_unsupported(exc):
        log.info("index %s on %s not supported by this server: %s", name, coll_name, exc)
        return IndexResult(coll_name, name, kind, "unsupported", _short(exc))
    log.warning("index %s on %s failed: %s", name, coll_name, exc)
    return IndexResult(coll_name, name, kind, "error", _short(exc))


def _short(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    text = getattr(exc, "details", None) or {}
    message = text.get("errmsg") if isinstance(text, dict) else None
    return f"{type(exc).__name__}{f' (code {code})' if code else ''}: {message or exc}"[:300]


async def apply_managed_indexes(
    db: Any, slug: str, managed: dict[str, list[dict[str, Any]]]
) -> list[IndexResult]:
    """Apply every managed index of ``slug``; never raises for a single index."""
    results: list[IndexResult] = []
    existing_cache: dict[str, dict[str, Any]] = {}
    for base, indexes in (managed or {}).items():
        for index in indexes or []:
            try:
                results.extend(await apply_index(db, slug, base, index, existing_cache))
            except Exception as exc:  # malformed stored config, driver bug...
                log.exception("managed index %s/%s failed", base, index)
                results.append(IndexResult(f"{slug}_{base}", str(index.get("name")),
                                           str(index.get("type")), "error", _short(exc)))  # fmt: skip
    return results


async def index_status(
    db: Any, slug: str, managed: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Presence of every managed index now: ``present``, ``missing`` or ``unsupported``."""
    out: list[dict[str, Any]] = []
    for base, indexes in (managed or {}).items():
        coll_name = physical_collection_name(slug, base)
        coll = db[coll_name]
        try:
            regular = await _existing(coll)
        except PyMongoError:
            regular = {}
        search: dict[str, dict[str, Any]] | None = None
        for index in indexes or []:
            kind = index.get("type", "regular")
            name = f"{slug}_{index.get('name')}"
            entry: dict[str, Any] = {"collection": coll_name, "name": name, "type": kind}
            if kind in ("vectorSearch", "search", "hybrid"):
                if search is None:
                    search = await _search_indexes(coll)
                if search.get("__unsupported__"):
                    entry["status"] = "unsupported"
                else:
                    names = [name] if kind != "hybrid" else [f"{name}_vector", f"{name}_text"]
                    found = [search.get(n) for n in names]
                    entry["status"] = "present" if all(found) else "missing"
                    entry["queryable"] = all(bool(f and f.get("queryable")) for f in found)
            else:
                spec = regular.get(name)
                entry["status"] = "present" if spec else "missing"
                if spec:
                    entry["keys"] = [list(p) for p in spec.get("key", {}).items()]
            out.append(entry)
    return out


async def _search_indexes(coll: Any) -> dict[str, dict[str, Any]]:
    try:
        cursor = await maybe_await(coll.list_search_indexes())
        return {spec["name"]: dict(spec) async for spec in cursor}
    except PyMongoError as exc:
        if _is_unsupported(exc):
            return {"__unsupported__": {"message": _short(exc)}}
        return {}
