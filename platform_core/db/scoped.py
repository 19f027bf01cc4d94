"""Per-experiment data access: ``ScopedDatabase`` and ``ScopedCollection`` (PLATFORM_SPEC 2.4).

Every experiment gets a view of the shared database in which

* collections are ``<write_scope>_<base>``, chosen by exact name (``db["clicks"]``,
  ``db.clicks``, ``db.collection("clicks")``); another experiment's collection is reachable
  only through ``db.collection("clicks", owner="click_tracker")``, only if that slug is in
  the read scopes, and then **read-only**;
* every document written carries ``experiment_id = write_scope`` (inserts, upserts,
  replacements), and no update can change that field;
* every read is filtered by ``S = {"experiment_id": {"$in": read_scopes}}``; every update,
  replace and delete by ``{"experiment_id": write_scope}`` (own data only);
* every operation the driver offers that cannot be scoped is refused with
  :class:`ScopeViolation`, never run unscoped.

Defects of the reference fixed here (spec 2.4, 6.13, 8.6, 8.7): ``data_scope`` no longer
allows updating or deleting another experiment's documents; ``$set``/``$rename``/``$unset``
of ``experiment_id`` is refused; upserts get ``experiment_id``; ``replace_one``,
``find_one_and_*``, ``distinct``, ``bulk_write`` are scoped; ``$lookup``/``$unionWith``/
``$graphLookup`` sub-pipelines are scoped; ``$out``/``$merge`` and server-side JavaScript are
refused; the caller's pipeline is never mutated; no ``database``/``raw``/``index_manager``
escape; collection names are never used verbatim.

Limits, stated plainly: private state lives in name-mangled ``__slots__`` and is not
returned by any public attribute, method, ``repr``, pickling or copying; code running in the
same interpreter can still reach it (``gc.get_referents``, slot descriptors). Isolation from
hostile experiment code needs a process boundary (spec 8.6), not a wrapper.

The rewriting rules are pure functions (``scoped_filter``, ``scope_update``,
``scope_document``, ``scope_pipeline``) so they can be tested without a server.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NoReturn

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.operations import (
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    UpdateMany,
    UpdateOne,
)

from platform_core.db.autoindex import AutoIndexManager
from platform_core.db.client import maybe_await
from platform_core.db.indexes import PROCESS_INDEX_GUARD, SCOPE_FIELD, IndexGuard
from platform_core.db.slugs import (
    owner_of,
    validate_collection_base_name,
    validate_slug,
)

__all__ = [
    "SCOPE_FIELD",
    "SERVER_JS_OPERATORS",
    "ScopeViolation",
    "ScopedCollection",
    "ScopedCollectionWrapper",
    "ScopedCursor",
    "ScopedDatabase",
    "ScopedMongoWrapper",
    "check_no_server_js",
    "read_scope_filter",
    "scope_document",
    "scope_pipeline",
    "scope_replacement",
    "scope_update",
    "scoped_filter",
    "write_scope_filter",
]


class ScopeViolation(PermissionError):
    """An operation would read or write outside the experiment's scope, so it was refused.

    Raised before anything is sent to the server. The message names the operation, the
    offending part and, where there is one, the scoped alternative.
    """


# --------------------------------------------------------------------------------------
# Pure rules
# --------------------------------------------------------------------------------------

SERVER_JS_OPERATORS = frozenset({"$where", "$function", "$accumulator"})


_MAX_DEPTH = 100


def find_server_js(value: Any) -> str | None:
    """The first server-side JavaScript operator used as a key anywhere in ``value``.

    Walks mappings, lists and tuples. Documents nested deeper than 100 levels (or cyclic
    structures, which could never be encoded as BSON anyway) are refused.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ValueError("query or pipeline nested more than 100 levels deep")
        if type(item) is dict or isinstance(item, Mapping):
            for key, sub in item.items():
                if key in SERVER_JS_OPERATORS:
                    return str(key)
                if type(sub) is dict or type(sub) is list or isinstance(sub, Mapping | tuple):
                    stack.append((sub, depth + 1))
        elif type(item) is list or type(item) is tuple or isinstance(item, list | tuple):
            for sub in item:
                if type(sub) is dict or type(sub) is list or isinstance(sub, Mapping | tuple):
                    stack.append((sub, depth + 1))
    return None


def check_no_server_js(value: Any, where: str) -> None:
    """Refuse ``$where``, ``$function`` and ``$accumulator`` at any depth of ``value``."""
    operator = find_server_js(value)
    if operator is not None:
        raise ScopeViolation(
            f"{where}: server-side JavaScript ({operator}) is not allowed in scoped operations"
        )


def read_scope_filter(read_scopes: Sequence[str]) -> dict[str, Any]:
    """``S``: the documents of every read scope (an equality when there is only one).

    Equality rather than a one-element ``$in``: same meaning, and planners (SecantusDB's
    in particular) handle it better.
    """
    scopes = list(read_scopes)
    if len(scopes) == 1:
        return {SCOPE_FIELD: scopes[0]}
    return {SCOPE_FIELD: {"$in": scopes}}


def write_scope_filter(write_scope: str) -> dict[str, Any]:
    """The experiment's own documents: what updates, replaces and deletes may touch."""
    return {SCOPE_FIELD: write_scope}


def _user_filter(flt: Any, where: str, *, allow_id: bool) -> dict[str, Any]:
    if flt is None:
        return {}
    if isinstance(flt, Mapping):
        return dict(flt)
    if allow_id:  # pymongo's find_one(oid) means {"_id": oid}
        return {"_id": flt}
    raise TypeError(f"{where}: filter must be a mapping, not {type(flt).__name__}")


def scoped_filter(
    user_filter: Mapping[str, Any] | None,
    scope: Mapping[str, Any],
    allowed_values: Collection[str],
) -> dict[str, Any]:
    """The user filter with the scope condition added at top level.

    Top-level conditions of a filter are ANDed, so ``{**user_filter, **scope}`` means
    exactly ``{"$and": [user_filter, scope]}`` whenever the user filter has no top-level
    ``experiment_id`` key of its own; it is preferred because query planners handle a flat
    filter much better (SecantusDB answers a top-level ``$and`` with a collection scan even
    when ``_id`` is pinned: 7–10 ms instead of 1 ms on 500 documents, measured). When the
    user filter does name ``experiment_id`` at top level, the explicit ``$and`` is kept so
    both conditions hold. If it pins ``experiment_id`` to one allowed slug, it is returned
    as is: adding the scope again would make upserts fail ("path is matched twice").
    """
    if not user_filter:
        return dict(scope)
    pinned = user_filter.get(SCOPE_FIELD)
    if type(pinned) is str and pinned in allowed_values:
        return dict(user_filter)
    if not any(_touches_scope(key) for key in user_filter):
        return {**user_filter, **scope}
    return {"$and": [dict(user_filter), dict(scope)]}


def _touches_scope(path: Any) -> bool:
    return isinstance(path, str) and (path == SCOPE_FIELD or path.startswith(SCOPE_FIELD + "."))


def _mentions_scope(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if _touches_scope(key):
                    return True
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


CLASSIC_UPDATE_OPERATORS = frozenset(
    {
        "$set", "$unset", "$inc", "$mul", "$rename", "$min", "$max", "$currentDate",
        "$setOnInsert", "$push", "$pull", "$pullAll", "$addToSet", "$pop", "$bit",
    }
)  # fmt: skip
PIPELINE_UPDATE_STAGES = frozenset(
    {"$addFields", "$set", "$project", "$unset", "$replaceRoot", "$replaceWith"}
)


def _scope_classic_update(
    update: Mapping[str, Any], write_scope: str, upsert: bool
) -> dict[str, Any]:
    if not update:
        raise ValueError("update document must not be empty")
    out: dict[str, Any] = {}
    for operator, spec in update.items():
        if not (isinstance(operator, str) and operator.startswith("$")):
            raise ValueError(
                f"update documents may only contain $ operators (got {operator!r}); "
                "use replace_one() to replace a document"
            )
        if operator not in CLASSIC_UPDATE_OPERATORS:
            raise ScopeViolation(f"update operator {operator} is not supported on scoped data")
        if not isinstance(spec, Mapping):
            raise ValueError(f"the value of {operator} must be a mapping of field paths")
        for path, value in spec.items():
            if _touches_scope(path):
                if operator == "$setOnInsert" and type(value) is str and value == write_scope:
                    continue  # harmless: it is what the platform sets anyway
                raise ScopeViolation(
                    f"update {operator} of {path!r} refused: {SCOPE_FIELD} is set by the "
                    "platform and cannot be changed"
                )
            if operator == "$rename" and _touches_scope(value):
                raise ScopeViolation(
                    f"update $rename of {path!r} to {value!r} refused: {SCOPE_FIELD} is set "
                    "by the platform and cannot be changed"
                )
        out[operator] = dict(spec)
    if upsert:
        out["$setOnInsert"] = {**out.get("$setOnInsert", {}), SCOPE_FIELD: write_scope}
    return out


def _scope_pipeline_update(stages: Sequence[Any], write_scope: str) -> list[dict[str, Any]]:
    if not stages:
        raise ValueError("update pipeline must not be empty")
    out: list[dict[str, Any]] = []
    for stage in stages:
        name, spec = _single_stage(stage, "update pipeline")
        if name not in PIPELINE_UPDATE_STAGES:
            raise ScopeViolation(f"stage {name} is not allowed in an update pipeline")
        if name in ("$set", "$addFields", "$project"):
            if not isinstance(spec, Mapping):
                raise ValueError(f"the value of {name} must be a mapping")
            touched = [k for k in spec if _touches_scope(k)]
        elif name == "$unset":
            names = [spec] if isinstance(spec, str) else list(spec)
            touched = [k for k in names if _touches_scope(k)]
        else:  # $replaceRoot / $replaceWith build a new document
            touched = [SCOPE_FIELD] if _mentions_scope(spec) else []
        if touched:
            raise ScopeViolation(
                f"update pipeline stage {name} touches {touched[0]!r}: {SCOPE_FIELD} is set "
                "by the platform and cannot be changed"
            )
        out.append({name: copy.deepcopy(spec)})
    # Belt and braces: whatever the stages did to the document (an inclusion $project or a
    # $replaceWith drops the field), it leaves with the writer's experiment_id. Matched
    # documents already had it (the filter requires it); upserted ones get it here.
    out.append({"$set": {SCOPE_FIELD: write_scope}})
    return out


def scope_update(update: Any, write_scope: str, *, upsert: bool = False) -> Any:
    """Check an update (operator document or pipeline) and add the scope to it.

    Refuses anything that would set, unset, rename or otherwise change ``experiment_id``
    and any server-side JavaScript. Upserts get ``$setOnInsert: {experiment_id}``
    (pipeline updates get a final ``$set`` instead, as ``$setOnInsert`` does not exist
    there). The caller's object is not modified.
    """
    check_no_server_js(update, "update")
    if isinstance(update, Mapping):
        return _scope_classic_update(update, write_scope, upsert)
    if isinstance(update, list | tuple):
        return _scope_pipeline_update(update, write_scope)
    raise TypeError(f"update must be a mapping or a pipeline list, not {type(update).__name__}")


def scope_document(document: Any, write_scope: str) -> dict[str, Any]:
    """A copy of ``document`` tagged with ``experiment_id = write_scope`` (caller's value
    overridden, caller's dict untouched)."""
    if not isinstance(document, Mapping):
        raise TypeError(f"documents must be mappings, not {type(document).__name__}")
    out = dict(document)
    out[SCOPE_FIELD] = write_scope
    return out


def scope_replacement(document: Any, write_scope: str) -> dict[str, Any]:
    """Like :func:`scope_document`, for replacements (which must not hold operators)."""
    if isinstance(document, Mapping):
        for key in document:
            if isinstance(key, str) and key.startswith("$"):
                raise ValueError(
                    f"replacement documents may not contain operators (got {key!r}); "
                    "use update_one() to update fields"
                )
    return scope_document(document, write_scope)


# -- aggregation -----------------------------------------------------------------------

ALLOWED_STAGES = frozenset(
    {
        "$addFields", "$bucket", "$bucketAuto", "$count", "$densify", "$facet", "$fill",
        "$geoNear", "$graphLookup", "$group", "$limit", "$lookup", "$match", "$project",
        "$redact", "$replaceRoot", "$replaceWith", "$sample", "$set", "$setWindowFields",
        "$skip", "$sort", "$sortByCount", "$unionWith", "$unset", "$unwind",
        "$vectorSearch",
    }
)  # fmt: skip
FIRST_STAGE_ONLY = frozenset({"$geoNear", "$vectorSearch"})
_WRITES = (
    "writes documents into a collection; refused on scoped data because the written "
    "documents could carry any experiment_id and $merge can modify documents of other "
    "experiments that share the target name"
)
_WHOLE = "reports on the whole collection or server, across experiments"
REFUSED_STAGES: Mapping[str, str] = {
    "$out": _WRITES,
    "$merge": _WRITES,
    "$search": (
        "Atlas Search cannot be given the experiment_id filter reliably; use $vectorSearch "
        "(scoped through its filter) or a $match query"
    ),
    "$searchMeta": "Atlas Search metadata cannot be scoped to one experiment",
    "$listSearchIndexes": _WHOLE,
    "$collStats": _WHOLE,
    "$indexStats": _WHOLE,
    "$planCacheStats": _WHOLE,
    "$currentOp": _WHOLE,
    "$listSessions": _WHOLE,
    "$listLocalSessions": _WHOLE,
    "$queryStats": _WHOLE,
    "$listSampledQueries": _WHOLE,
    "$shardedDataDistribution": _WHOLE,
    "$changeStream": "change streams report every experiment's writes",
    "$changeStreamSplitLargeEvent": "change streams report every experiment's writes",
    "$documents": "it reads no collection and cannot be combined with the scope filter",
}


def _single_stage(stage: Any, where: str) -> tuple[str, Any]:
    if not isinstance(stage, Mapping) or len(stage) != 1:
        raise ValueError(f"{where}: each stage must be a mapping with exactly one key: {stage!r}")
    ((name, spec),) = stage.items()
    if not isinstance(name, str):
        raise ValueError(f"{where}: stage names must be strings: {name!r}")
    return name, spec


def _stage_list(pipeline: Any, where: str) -> list[tuple[str, Any]]:
    if isinstance(pipeline, str | bytes | Mapping) or not isinstance(pipeline, Sequence):
        raise TypeError(f"{where} must be a list of stages, not {type(pipeline).__name__}")
    return [_single_stage(stage, where) for stage in pipeline]


def _and(existing: Any, scope: dict[str, Any]) -> dict[str, Any]:
    return {"$and": [existing, scope]} if existing else scope


def _readable_collection(name: Any, read_scopes: Sequence[str], where: str) -> str:
    if type(name) is not str:
        raise ScopeViolation(
            f"{where}: the collection must be a physical name '<slug>_<collection>' of a "
            f"read scope {list(read_scopes)}, not {name!r}"
        )
    if owner_of(name, read_scopes) is None:
        raise ScopeViolation(
            f"{where}: collection {name!r} does not belong to any read scope "
            f"{list(read_scopes)}; name it '<slug>_<collection>' with a slug in the scope"
        )
    return name


def _scope_lookup(spec: Any, scopes: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: $lookup takes a mapping")
    out = dict(spec)
    if "from" not in out:
        raise ScopeViolation(f"{where}: $lookup without 'from' is refused on scoped data")
    _readable_collection(out["from"], scopes, f"{where} $lookup")
    sub = _stage_list(out.get("pipeline", []), f"{where} $lookup.pipeline")
    # localField/foreignField together with a pipeline needs MongoDB 5.0+.
    out["pipeline"] = _scope_stages(sub, scopes, f"{where} $lookup", prepend=True)
    return out


def _scope_union(spec: Any, scopes: Sequence[str], where: str) -> dict[str, Any]:
    if isinstance(spec, str):
        spec = {"coll": spec}
    if not isinstance(spec, Mapping) or "coll" not in spec:
        raise ScopeViolation(f"{where}: $unionWith needs a 'coll' of a read scope")
    out = dict(spec)
    _readable_collection(out["coll"], scopes, f"{where} $unionWith")
    sub = _stage_list(out.get("pipeline", []), f"{where} $unionWith.pipeline")
    out["pipeline"] = _scope_stages(sub, scopes, f"{where} $unionWith", prepend=True)
    return out


def _scope_graph_lookup(
    spec: Any, scopes: Sequence[str], where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scoped ``$graphLookup`` and a ``$set`` stage that re-filters its output array.

    ``restrictSearchWithMatch`` is the server-side scope (on mongod it restricts every
    step of the traversal). The ``$filter`` after it keeps the guarantee on servers that
    apply the restriction loosely: SecantusDB 0.7 returned out-of-scope documents with it.
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: $graphLookup takes a mapping")
    out = dict(spec)
    _readable_collection(out.get("from"), scopes, f"{where} $graphLookup")
    target = out.get("as")
    if not isinstance(target, str) or not target or target.startswith("$"):
        raise ValueError(f"{where}: $graphLookup needs an 'as' field name")
    out["restrictSearchWithMatch"] = _and(
        out.get("restrictSearchWithMatch"), read_scope_filter(scopes)
    )
    refilter = {
        "$set": {
            target: {
                "$filter": {
                    "input": f"${target}",
                    "cond": {"$in": [f"$$this.{SCOPE_FIELD}", list(scopes)]},
                }
            }
        }
    }
    return out, refilter


def _scope_stages(
    stages: list[tuple[str, Any]], scopes: Sequence[str], where: str, *, prepend: bool
) -> list[dict[str, Any]]:
    """Check and rewrite one pipeline level; ``prepend`` adds the scope to its input."""
    out: list[dict[str, Any]] = []
    for index, (name, spec) in enumerate(stages):
        if name in REFUSED_STAGES:
            raise ScopeViolation(f"{where}: stage {name} refused: {REFUSED_STAGES[name]}")
        if name not in ALLOWED_STAGES:
            raise ScopeViolation(f"{where}: stage {name!r} is not allowed on scoped data")
        if name in FIRST_STAGE_ONLY and (index != 0 or not prepend):
            raise ScopeViolation(f"{where}: {name} is only allowed as the first stage")
        if name == "$lookup":
            spec = _scope_lookup(spec, scopes, where)
        elif name == "$unionWith":
            spec = _scope_union(spec, scopes, where)
        elif name == "$graphLookup":
            spec, refilter = _scope_graph_lookup(spec, scopes, where)
            out.append({name: spec})
            out.append(refilter)
            continue
        elif name == "$facet":
            if not isinstance(spec, Mapping):
                raise ValueError(f"{where}: $facet takes a mapping of pipelines")
            spec = {
                key: _scope_stages(
                    _stage_list(sub, f"{where} $facet.{key}"), scopes,
                    f"{where} $facet.{key}", prepend=False,
                )
                for key, sub in spec.items()
            }  # fmt: skip
        out.append({name: spec})
    if prepend:
        scope = read_scope_filter(scopes)
        first = next(iter(out[0])) if out else None
        if first in FIRST_STAGE_ONLY:
            stage = out[0][first]
            if not isinstance(stage, Mapping):
                raise ValueError(f"{where}: {first} takes a mapping")
            stage = dict(stage)
            # $vectorSearch pre-filters through "filter" ($match before it is illegal and
            # after it would return fewer than `limit` hits); $geoNear through "query".
            key = "filter" if first == "$vectorSearch" else "query"
            stage[key] = _and(stage.get(key), scope)
            out[0] = {first: stage}
        else:
            out.insert(0, {"$match": scope})
    return out


def scope_pipeline(
    pipeline: Any, read_scopes: Sequence[str], *, in_place: bool = False
) -> list[dict[str, Any]]:
    """The scoped version of an aggregation pipeline (a new object; the input is untouched).

    ``in_place=True`` is the baseline of knob ``vector_scope`` (report 5.3): like the
    reference, the scope is also written into the *caller's* first-stage
    ``$vectorSearch``/``$geoNear`` dict, so reusing a pipeline object nests ``$and``s.
    The result is scoped either way; only the caller's object differs.

    * The input is limited to ``S``: a ``$match`` in front, or merged with ``$and`` into
      the ``filter`` of a first-stage ``$vectorSearch`` / the ``query`` of ``$geoNear``.
    * ``$lookup``, ``$unionWith`` and ``$graphLookup`` must name a collection of a read
      scope by its physical name; their sub-pipelines get the same scope (``$match`` in
      front; for ``$graphLookup`` ``restrictSearchWithMatch`` plus a ``$filter`` of its
      output array). ``$facet`` sub-pipelines are checked (their input is already scoped).
    * Stages that write (``$out``, ``$merge``), report across experiments, or cannot be
      scoped (``$search``) are refused, as is every stage not on the allowlist and any
      server-side JavaScript.
    """
    scopes = [validate_slug(s) for s in read_scopes]
    if not scopes:
        raise ValueError("read_scopes must not be empty")
    check_no_server_js(pipeline, "aggregate pipeline")
    stages = _stage_list(copy.deepcopy(pipeline), "aggregate pipeline")
    out = _scope_stages(stages, scopes, "aggregate pipeline", prepend=True)
    if in_place and isinstance(pipeline, list) and pipeline:
        first = next(iter(out[0]))
        original = pipeline[0].get(first) if isinstance(pipeline[0], dict) else None
        if first in FIRST_STAGE_ONLY and isinstance(original, dict):
            key = "filter" if first == "$vectorSearch" else "query"
            original[key] = copy.deepcopy(out[0][first][key])
    return out


def _scope_bulk_op(op: Any, write_scope: str) -> Any:
    """Rebuild one bulk operation with the scope applied (exact pymongo types only).

    The operation's fields are read from pymongo's (private, stable since 3.x) attributes
    and a *new* operation is built, so subclasses and ``namespace`` values cannot smuggle
    anything through.
    """
    kind = type(op)

    def scoped(op_filter: Any) -> dict[str, Any]:
        user = _user_filter(op_filter, "bulk_write", allow_id=False)
        return scoped_filter(user, write_scope_filter(write_scope), [write_scope])

    if kind is InsertOne:
        return InsertOne(scope_document(op._doc, write_scope))
    if kind is UpdateOne or kind is UpdateMany:
        check_no_server_js((op._filter, op._array_filters), f"bulk_write {kind.__name__}")
        upsert = bool(op._upsert)
        extra = {"sort": op._sort} if kind is UpdateOne and op._sort is not None else {}
        return kind(
            scoped(op._filter),
            scope_update(op._doc, write_scope, upsert=upsert),
            upsert=op._upsert,
            collation=op._collation,
            array_filters=op._array_filters,
            hint=op._hint,
            **extra,
        )
    if kind is ReplaceOne:
        check_no_server_js(op._filter, "bulk_write ReplaceOne")
        return ReplaceOne(
            scoped(op._filter),
            scope_replacement(op._doc, write_scope),
            upsert=op._upsert,
            collation=op._collation,
            hint=op._hint,
            sort=op._sort,
        )
    if kind is DeleteOne or kind is DeleteMany:
        check_no_server_js(op._filter, f"bulk_write {kind.__name__}")
        return kind(
            scoped(op._filter),
            collation=op._collation,
            hint=op._hint,
        )
    raise ScopeViolation(
        f"bulk_write: operation {kind.__name__} is not supported on scoped data "
        "(use InsertOne, UpdateOne, UpdateMany, ReplaceOne, DeleteOne or DeleteMany)"
    )


# --------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------


class _Sealed:
    """Refuse pickling and copying: their state would include the unscoped handles."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled or copied")

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled or copied")

    def __getstate__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled or copied")

    def __copy__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled or copied")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled or copied")


class ScopedCursor(_Sealed):
    """A driver cursor behind a narrow interface.

    Driver cursors lead back to the unscoped database (``cursor.collection``,
    ``cursor.session.client``) and ``Cursor.where()`` adds server-side JavaScript, so the
    raw cursor is not handed out. Iteration, ``to_list`` and the usual chainable options
    are forwarded; chainable methods return this wrapper.
    """

    __slots__ = ("__cursor",)

    def __init__(self, cursor: Any) -> None:
        self.__cursor = cursor

    def __aiter__(self) -> ScopedCursor:
        return self

    async def __anext__(self) -> Any:
        return await self.__cursor.__anext__()

    async def next(self) -> Any:
        return await self.__cursor.next()

    async def to_list(self, length: int | None = None) -> list[Any]:
        return list(await maybe_await(self.__cursor.to_list(length)))

    async def close(self) -> None:
        await maybe_await(self.__cursor.close())

    async def __aenter__(self) -> ScopedCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def alive(self) -> bool:
        return bool(self.__cursor.alive)

    def __chain(self, method: str, *args: Any) -> ScopedCursor:
        check_no_server_js(args, f"cursor.{method}()")
        getattr(self.__cursor, method)(*args)
        return self

    def sort(self, key_or_list: Any, direction: Any = None) -> ScopedCursor:
        if direction is None:
            return self.__chain("sort", key_or_list)
        return self.__chain("sort", key_or_list, direction)

    def skip(self, skip: int) -> ScopedCursor:
        return self.__chain("skip", skip)

    def limit(self, limit: int) -> ScopedCursor:
        return self.__chain("limit", limit)

    def batch_size(self, batch_size: int) -> ScopedCursor:
        return self.__chain("batch_size", batch_size)

    def max_time_ms(self, max_time_ms: int | None) -> ScopedCursor:
        return self.__chain("max_time_ms", max_time_ms)

    def hint(self, index: Any) -> ScopedCursor:
        return self.__chain("hint", index)

    def comment(self, comment: Any) -> ScopedCursor:
        return self.__chain("comment", comment)

    def collation(self, collation: Any) -> ScopedCursor:
        return self.__chain("collation", collation)

    def allow_disk_use(self, allow_disk_use: bool) -> ScopedCursor:
        return self.__chain("allow_disk_use", allow_disk_use)

    async def explain(self) -> Any:
        return await maybe_await(self.__cursor.explain())

    async def distinct(self, key: str) -> list[Any]:
        """Distinct values over this (scoped) find cursor."""
        return list(await maybe_await(self.__cursor.distinct(key)))

    def clone(self) -> ScopedCursor:
        return ScopedCursor(self.__cursor.clone())

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(
            f"ScopedCursor has no attribute {name!r} (driver cursor internals are not exposed)"
        )

    def __repr__(self) -> str:
        return "ScopedCursor()"


def _refused(name: str, reason: str) -> Callable[..., NoReturn]:
    def method(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise ScopeViolation(f"{type(self).__name__}.{name}() is refused: {reason}")

    method.__name__ = name
    method.__doc__ = f"Refused on scoped data: {reason}."
    return method


_ADMIN = "collection administration is not part of an experiment's scoped access"


class ScopedCollection(_Sealed):
    """One collection as one experiment sees it (see the module docstring for the rules).

    Built by :class:`ScopedDatabase`. ``owner`` is the slug whose collection this is; the
    collection is writable only if ``owner == write_scope``.

    Index maintenance: the first *awaited* operation on each wrapper awaits the index guard
    (``experiment_id`` index; with the default process guard that is one ``listIndexes``
    per collection per process and a dict lookup afterwards). ``find()`` is synchronous, so
    it starts the same check in the background instead. Foreign (read-only) collections are
    left to their owner. Auto-indexing counts query shapes of ``find``/``find_one``/
    ``count_documents`` and builds repeated ones in the background.
    """

    __slots__ = (
        "__auto",
        "__base",
        "__coll",
        "__guard",
        "__in_place",
        "__index_ready",
        "__owner",
        "__read_scopes",
        "__writable",
        "__write_scope",
    )

    def __init__(
        self,
        collection: Any,
        read_scopes: Sequence[str],
        write_scope: str,
        *,
        owner: str | None = None,
        auto_index: bool = True,
        index_guard: IndexGuard | None = PROCESS_INDEX_GUARD,
        auto_index_factory: Callable[[Any], AutoIndexManager] | None = None,
        vector_scope: str = "copy",
    ) -> None:
        if vector_scope not in ("copy", "in_place"):
            raise ValueError(f"unknown vector_scope {vector_scope!r}: 'copy' or 'in_place'")
        self.__in_place = vector_scope == "in_place"
        write_scope = validate_slug(write_scope)
        scopes = _normalise_read_scopes(read_scopes, write_scope)
        physical = collection.name
        owner = owner_of(physical, scopes) if owner is None else validate_slug(owner)
        if owner is None or not physical.startswith(owner + "_"):
            raise ScopeViolation(
                f"collection {physical!r} does not belong to any read scope {list(scopes)}"
            )
        if owner not in scopes:
            raise ScopeViolation(f"{owner!r} is not in the read scopes {list(scopes)}")
        self.__coll = collection
        self.__read_scopes = scopes
        self.__write_scope = write_scope
        self.__owner = owner
        self.__base = validate_collection_base_name(physical[len(owner) + 1 :])
        self.__writable = owner == write_scope
        self.__guard = index_guard if (auto_index and self.__writable) else None
        self.__index_ready = self.__guard is None
        self.__auto: AutoIndexManager | None = None
        if auto_index and self.__writable:
            factory = auto_index_factory or _default_auto_index_manager
            self.__auto = factory(collection)

    # -- facts (strings only) ------------------------------------------------------------
    @property
    def name(self) -> str:
        """The physical collection name, ``<owner>_<base_name>``."""
        return f"{self.__owner}_{self.__base}"

    @property
    def base_name(self) -> str:
        return self.__base

    @property
    def owner(self) -> str:
        return self.__owner

    @property
    def write_scope(self) -> str:
        return self.__write_scope

    @property
    def read_scopes(self) -> tuple[str, ...]:
        return self.__read_scopes

    @property
    def writable(self) -> bool:
        return self.__writable

    @property
    def auto_index_stats(self) -> dict[str, int] | None:
        """A snapshot of the auto-index counters (None when auto-indexing is off)."""
        return None if self.__auto is None else self.__auto.stats.as_dict()

    def __repr__(self) -> str:
        mode = "rw" if self.__writable else "ro"
        return f"ScopedCollection({self.name!r}, scope={self.__write_scope!r}, {mode})"

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(
            f"ScopedCollection has no attribute {name!r}: only scoped operations are exposed "
            "(the driver collection, its database and client are not)"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            f"ScopedCollection {self.name!r} is not callable: ScopedDatabase has no method of "
            "that name, so attribute access returned a collection"
        )

    # -- internals -----------------------------------------------------------------------
    async def __ready(self) -> None:
        if self.__index_ready:
            return
        assert self.__guard is not None
        if await self.__guard.ensure(self.__coll):
            self.__index_ready = True

    def __need_writable(self, operation: str) -> None:
        if not self.__writable:
            raise ScopeViolation(
                f"{operation} on {self.name!r} refused: the collection belongs to "
                f"{self.__owner!r} and is read-only for {self.__write_scope!r}"
            )

    def __read_filter(
        self, flt: Any, where: str, options: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        user = _user_filter(flt, where, allow_id=True)
        check_no_server_js((user, options), where)
        scoped = scoped_filter(user, read_scope_filter(self.__read_scopes), self.__read_scopes)
        return user, scoped

    def __write_filter(self, flt: Any, where: str) -> dict[str, Any]:
        self.__need_writable(where)
        user = _user_filter(flt, where, allow_id=False)
        check_no_server_js(user, where)
        return scoped_filter(user, write_scope_filter(self.__write_scope), [self.__write_scope])

    def __observe(self, user_filter: Mapping[str, Any], sort: Any = None) -> None:
        if self.__auto is not None:
            self.__auto.observe(user_filter, sort)

    # -- maintenance ---------------------------------------------------------------------
    async def ensure_scope_index(self) -> bool:
        """Await the ``experiment_id`` index check now; True if the index is known to exist
        (always True for read-only collections and with auto-indexing off)."""
        await self.__ready()
        return self.__index_ready

    async def drain_index_tasks(self) -> None:
        """Wait for background auto-index builds started by this wrapper (tests, shutdown)."""
        if self.__auto is not None:
            await self.__auto.drain()

    # -- reads ---------------------------------------------------------------------------
    def find(self, filter: Any = None, *args: Any, **kwargs: Any) -> ScopedCursor:
        """A cursor over the read scopes' matching documents (options passed through)."""
        user, scoped = self.__read_filter(filter, "find", (args, kwargs))
        if not self.__index_ready and self.__guard is not None:
            self.__guard.ensure_soon(self.__coll)
        self.__observe(user, kwargs.get("sort"))
        return ScopedCursor(self.__coll.find(scoped, *args, **kwargs))

    async def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        user, scoped = self.__read_filter(filter, "find_one", (args, kwargs))
        await self.__ready()
        self.__observe(user, kwargs.get("sort"))
        return await self.__coll.find_one(scoped, *args, **kwargs)

    async def count_documents(self, filter: Any = None, **kwargs: Any) -> int:
        user, scoped = self.__read_filter(filter, "count_documents", kwargs)
        await self.__ready()
        self.__observe(user)
        return int(await self.__coll.count_documents(scoped, **kwargs))

    async def distinct(self, key: str, filter: Any = None, **kwargs: Any) -> list[Any]:
        if not isinstance(key, str) or not key:
            raise ValueError("distinct key must be a non-empty string")
        _, scoped = self.__read_filter(filter, "distinct", kwargs)
        await self.__ready()
        return list(await self.__coll.distinct(key, scoped, **kwargs))

    async def aggregate(self, pipeline: Any, **kwargs: Any) -> ScopedCursor:
        """Run :func:`scope_pipeline` of ``pipeline``; returns the result cursor."""
        scoped = scope_pipeline(pipeline, self.__read_scopes, in_place=self.__in_place)
        check_no_server_js(kwargs, "aggregate")
        await self.__ready()
        return ScopedCursor(await maybe_await(self.__coll.aggregate(scoped, **kwargs)))

    # -- writes --------------------------------------------------------------------------
    async def insert_one(self, document: Any, **kwargs: Any) -> Any:
        """Insert a copy of ``document`` tagged with the write scope.

        The caller's dict is not modified, so (unlike pymongo) it does not gain an ``_id``:
        use ``result.inserted_id``.
        """
        self.__need_writable("insert_one")
        doc = scope_document(document, self.__write_scope)
        await self.__ready()
        return await self.__coll.insert_one(doc, **kwargs)

    async def insert_many(self, documents: Iterable[Any], **kwargs: Any) -> Any:
        self.__need_writable("insert_many")
        if isinstance(documents, Mapping | str | bytes):
            raise TypeError("insert_many takes an iterable of documents")
        docs = [scope_document(d, self.__write_scope) for d in documents]
        await self.__ready()
        return await self.__coll.insert_many(docs, **kwargs)

    async def update_one(
        self, filter: Any, update: Any, upsert: bool = False, **kwargs: Any
    ) -> Any:
        scoped = self.__write_filter(filter, "update_one")
        new_update = scope_update(update, self.__write_scope, upsert=upsert)
        check_no_server_js(kwargs, "update_one")
        await self.__ready()
        return await self.__coll.update_one(scoped, new_update, upsert=upsert, **kwargs)

    async def update_many(
        self, filter: Any, update: Any, upsert: bool = False, **kwargs: Any
    ) -> Any:
        scoped = self.__write_filter(filter, "update_many")
        new_update = scope_update(update, self.__write_scope, upsert=upsert)
        check_no_server_js(kwargs, "update_many")
        await self.__ready()
        return await self.__coll.update_many(scoped, new_update, upsert=upsert, **kwargs)

    async def replace_one(
        self, filter: Any, replacement: Any, upsert: bool = False, **kwargs: Any
    ) -> Any:
        scoped = self.__write_filter(filter, "replace_one")
        doc = scope_replacement(replacement, self.__write_scope)
        check_no_server_js(kwargs, "replace_one")
        await self.__ready()
        return await self.__coll.replace_one(scoped, doc, upsert=upsert, **kwargs)

    async def delete_one(self, filter: Any, **kwargs: Any) -> Any:
        scoped = self.__write_filter(filter, "delete_one")
        check_no_server_js(kwargs, "delete_one")
        await self.__ready()
        return await self.__coll.delete_one(scoped, **kwargs)

    async def delete_many(self, filter: Any, **kwargs: Any) -> Any:
        scoped = self.__write_filter(filter, "delete_many")
        check_no_server_js(kwargs, "delete_many")
        await self.__ready()
        return await self.__coll.delete_many(scoped, **kwargs)

    async def find_one_and_update(
        self,
        filter: Any,
        update: Any,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        **kwargs: Any,
    ) -> Any:
        scoped = self.__write_filter(filter, "find_one_and_update")
        new_update = scope_update(update, self.__write_scope, upsert=upsert)
        check_no_server_js((projection, kwargs), "find_one_and_update")
        await self.__ready()
        return await self.__coll.find_one_and_update(
            scoped, new_update, projection=projection, sort=sort, upsert=upsert, **kwargs
        )

    async def find_one_and_replace(
        self,
        filter: Any,
        replacement: Any,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        **kwargs: Any,
    ) -> Any:
        scoped = self.__write_filter(filter, "find_one_and_replace")
        doc = scope_replacement(replacement, self.__write_scope)
        check_no_server_js((projection, kwargs), "find_one_and_replace")
        await self.__ready()
        return await self.__coll.find_one_and_replace(
            scoped, doc, projection=projection, sort=sort, upsert=upsert, **kwargs
        )

    async def find_one_and_delete(
        self, filter: Any, projection: Any = None, sort: Any = None, **kwargs: Any
    ) -> Any:
        scoped = self.__write_filter(filter, "find_one_and_delete")
        check_no_server_js((projection, kwargs), "find_one_and_delete")
        await self.__ready()
        return await self.__coll.find_one_and_delete(
            scoped, projection=projection, sort=sort, **kwargs
        )

    async def bulk_write(self, requests: Iterable[Any], ordered: bool = True, **kwargs: Any) -> Any:
        """Each operation is rebuilt with the scope (see :func:`_scope_bulk_op`); any other
        operation type refuses the whole batch before anything is sent."""
        self.__need_writable("bulk_write")
        ops = [_scope_bulk_op(op, self.__write_scope) for op in requests]
        check_no_server_js(kwargs, "bulk_write")
        await self.__ready()
        return await self.__coll.bulk_write(ops, ordered=ordered, **kwargs)

    # -- refused -------------------------------------------------------------------------
    estimated_document_count = _refused(
        "estimated_document_count",
        "it uses collection metadata and counts every experiment's documents; "
        "use count_documents({}) instead",
    )
    watch = _refused("watch", "change streams would report every experiment's writes")
    drop = _refused("drop", _ADMIN)
    rename = _refused("rename", _ADMIN)
    create_index = _refused("create_index", _ADMIN)
    create_indexes = _refused("create_indexes", _ADMIN)
    create_search_index = _refused("create_search_index", _ADMIN)
    drop_index = _refused("drop_index", _ADMIN)
    drop_indexes = _refused("drop_indexes", _ADMIN)
    list_indexes = _refused("list_indexes", _ADMIN)
    index_information = _refused("index_information", _ADMIN)
    options = _refused("options", _ADMIN)
    with_options = _refused("with_options", "it would return an unscoped driver collection")
    find_raw_batches = _refused("find_raw_batches", "use find()")
    aggregate_raw_batches = _refused("aggregate_raw_batches", "use aggregate()")


def _default_auto_index_manager(collection: Any) -> AutoIndexManager:
    return AutoIndexManager(collection, prefix_fields=(SCOPE_FIELD,))


def _normalise_read_scopes(read_scopes: Any, write_scope: str) -> tuple[str, ...]:
    if isinstance(read_scopes, str | bytes) or not isinstance(read_scopes, Iterable):
        raise TypeError(
            f"read_scopes must be a list of slugs, not {type(read_scopes).__name__} {read_scopes!r}"
        )
    scopes: list[str] = []
    for slug in read_scopes:
        validate_slug(slug)
        if slug not in scopes:
            scopes.append(slug)
    if write_scope not in scopes:  # an experiment can always read what it writes
        scopes.insert(0, write_scope)
    return tuple(scopes)


# Names that mean "the driver's database" on a driver object: attribute access with these
# names is refused instead of silently returning a collection called e.g. "<slug>_client".
_DRIVER_DATABASE_ATTRIBUTES = frozenset(
    n for n in dir(AsyncDatabase) + dir(AsyncCollection) if not n.startswith("_")
) | {"raw", "delegate", "index_manager", "admin", "get_io_loop", "wrap"}


class ScopedDatabase(_Sealed):
    """An experiment's view of the database: ``read_scopes`` to read, ``write_scope`` to write.

    ``db["clicks"]``, ``db.clicks`` and ``db.collection("clicks")`` are the collection
    ``<write_scope>_clicks``; ``db.collection("clicks", owner="other")`` is ``other_clicks``,
    read-only and only if ``other`` is a read scope. The write scope is always readable
    (added to ``read_scopes`` if missing). Wrappers are cached per instance (spec 6.5).

    Attribute access with a name of a driver database/collection attribute (``database``,
    ``client``, ``command``, ``name``...) raises ``AttributeError`` instead of returning a
    collection; use ``db["name"]`` for such base names.

    ``known_slugs`` (optional): the registered slugs of the platform. With it, asking for a
    base name whose physical name would be owned by a longer registered slug (``store``
    asking for ``factory_x`` while ``store_factory`` exists) is refused, so that creation
    and :meth:`owned_collection_names` always agree on the owner. Without it, ``store`` may
    use ``store_factory_x``: documents stay separated by ``experiment_id`` either way.

    ``index_guard``: the ``experiment_id`` index guard (default: the process guard;
    ``None`` disables the check). ``auto_index=False`` disables the guard and
    auto-indexing. ``auto_index_factory(collection)`` builds the :class:`AutoIndexManager`
    for each writable collection wrapper (the default prefixes ``experiment_id``).
    """

    __slots__ = (
        "__auto_factory",
        "__auto_index",
        "__cache",
        "__cache_wrappers",
        "__db",
        "__guard",
        "__known",
        "__read_scopes",
        "__vector_scope",
        "__write_scope",
    )

    def __init__(
        self,
        database: Any,
        read_scopes: Iterable[str],
        write_scope: str,
        *,
        auto_index: bool = True,
        index_guard: IndexGuard | None = PROCESS_INDEX_GUARD,
        auto_index_factory: Callable[[Any], AutoIndexManager] | None = None,
        known_slugs: Iterable[str] = (),
        cache_wrappers: bool = True,
        vector_scope: str = "copy",
    ) -> None:
        self.__write_scope = validate_slug(write_scope)
        self.__read_scopes = _normalise_read_scopes(read_scopes, self.__write_scope)
        if isinstance(known_slugs, str | bytes):
            raise TypeError("known_slugs must be a list of slugs, not a string")
        self.__known = frozenset(validate_slug(s) for s in known_slugs)
        self.__db = database
        self.__auto_index = bool(auto_index)
        self.__guard = index_guard
        self.__auto_factory = auto_index_factory
        self.__cache: dict[tuple[str, str], ScopedCollection] = {}
        # Knob wrapper_cache (report 2.2): "none" builds a new wrapper on every access.
        self.__cache_wrappers = bool(cache_wrappers)
        self.__vector_scope = vector_scope

    @property
    def write_scope(self) -> str:
        return self.__write_scope

    @property
    def read_scopes(self) -> tuple[str, ...]:
        return self.__read_scopes

    def __repr__(self) -> str:
        return (
            f"ScopedDatabase(write_scope={self.__write_scope!r}, "
            f"read_scopes={list(self.__read_scopes)!r})"
        )

    def collection(self, name: str, *, owner: str | None = None) -> ScopedCollection:
        """The scoped collection ``<owner>_<name>`` (owner defaults to the write scope)."""
        base = validate_collection_base_name(name)
        owner = self.__write_scope if owner is None else validate_slug(owner)
        key = (owner, base)
        cached = self.__cache.get(key)
        if cached is not None:
            return cached
        if owner not in self.__read_scopes:
            raise ScopeViolation(
                f"experiment {self.__write_scope!r} may not read collections of {owner!r}: "
                f"it is not in its read scopes {list(self.__read_scopes)}"
            )
        physical = f"{owner}_{base}"
        if self.__known:
            claimant = owner_of(physical, self.__known | {owner})
            if claimant != owner:
                raise ScopeViolation(
                    f"collection {physical!r} would belong to the registered experiment "
                    f"{claimant!r}; choose another base name than {base!r}"
                )
        wrapper = ScopedCollection(
            self.__db[physical],
            self.__read_scopes,
            self.__write_scope,
            owner=owner,
            auto_index=self.__auto_index,
            index_guard=self.__guard,
            auto_index_factory=self.__auto_factory,
            vector_scope=self.__vector_scope,
        )
        if self.__cache_wrappers:
            self.__cache[key] = wrapper
        return wrapper

    def get_collection(self, name: str, *, owner: str | None = None) -> ScopedCollection:
        """Same as :meth:`collection`. Unlike the reference, a name containing ``_`` is
        never used verbatim: ``get_collection("click_tracker_clicks")`` is
        ``<write_scope>_click_tracker_clicks``; use ``owner=`` for other experiments."""
        return self.collection(name, owner=owner)

    def __getitem__(self, name: str) -> ScopedCollection:
        return self.collection(name)

    def __getattr__(self, name: str) -> ScopedCollection:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _DRIVER_DATABASE_ATTRIBUTES:
            raise AttributeError(
                f"ScopedDatabase does not provide {name!r}: it would give unscoped access "
                f"or is not a scoped operation; use db[{name!r}] for a collection of that name"
            )
        try:
            return self.collection(name)
        except ValueError as exc:
            raise AttributeError(str(exc)) from exc

    def __iter__(self) -> NoReturn:
        raise TypeError("ScopedDatabase is not iterable")

    async def ensure_indexes(self) -> None:
        """Await the ``experiment_id`` index check of every writable collection used so far."""
        for wrapper in list(self.__cache.values()):
            await wrapper.ensure_scope_index()

    async def owned_collection_names(self, known_slugs: Iterable[str] = ()) -> list[str]:
        """Existing collections that belong to the write scope, by exact ownership.

        A name belongs to the slug :func:`~platform_core.db.slugs.owner_of` assigns it
        among the write scope, ``known_slugs`` and the slugs given at construction: the
        longest registered slug ``s`` with ``name == s + "_" + <valid base>``. So with
        ``store_factory`` registered, ``store`` does not own ``store_factory_x``; without
        any registry it does (nothing else could claim it). This is the list to dump or
        drop when an experiment is exported or deleted, never ``startswith(slug)``.
        """
        if isinstance(known_slugs, str | bytes):
            raise TypeError("known_slugs must be a list of slugs, not a string")
        slugs = {self.__write_scope} | self.__known | {validate_slug(s) for s in known_slugs}
        names = await self.__db.list_collection_names()
        return sorted(n for n in names if owner_of(n, slugs) == self.__write_scope)


ScopedMongoWrapper = ScopedDatabase
ScopedCollectionWrapper = ScopedCollection
