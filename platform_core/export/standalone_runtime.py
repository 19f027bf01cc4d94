"""Runtime of a standalone experiment app exported by platform_core (spec 2.16 / 9).

The export ZIP ships this file as ``standalone_runtime.py`` next to the generated
``main.py``. It is self-contained on purpose: it imports only the standard library,
FastAPI/Starlette, Jinja2 and PyMongo (``bson``), never ``platform_core``, so the exported
app runs without the platform installed. It provides what an experiment's code uses from
the platform, with the same data scoping:

* :class:`ScopedDatabase` / :class:`ScopedCollection`: collections are
  ``<slug>_<base>``; every write carries ``experiment_id = slug`` and can only touch the
  experiment's own documents; every read is filtered on the read scopes (``data_scope``);
  another experiment's collections (``owner=``) are read-only; server-side JavaScript,
  ``$out``/``$merge`` and the cross-collection stages ``$lookup``/``$unionWith``/
  ``$graphLookup`` are refused (fail closed; the platform rewrites the latter, this small
  copy does not);
* the dependencies of ``platform_core.experiments.deps`` (``ExperimentDB``,
  ``ExperimentFacade``, ``ExperimentConfig``, ``ExperimentTemplates``,
  ``ExperimentActorHandle``, ``render_experiment``...) and ``actor_db.actor_database``,
  registered under their platform module names by :func:`install_platform_aliases`
  before the experiment is imported;
* seeding from ``db_config.json``/``db_collections.json`` (insert-if-missing, so a restart
  never duplicates or overwrites), ``managed_indexes`` (same index names as the platform:
  ``<slug>_<name>``), the in-process actor, and the ``/_debug/db`` summary.
"""

from __future__ import annotations

import copy
import inspect
import logging
import re
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from bson import json_util
from fastapi import Depends, HTTPException, Request
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader, select_autoescape
from pymongo import UpdateOne
from pymongo.errors import PyMongoError
from starlette.responses import Response
from starlette.templating import Jinja2Templates

log = logging.getLogger("standalone_runtime")

SCOPE_FIELD = "experiment_id"
CONFIG_COLLECTION = "experiments_config"
_NAME_RE = re.compile(r"^[a-z0-9_]+$")
SERVER_JS_OPERATORS = frozenset({"$where", "$function", "$accumulator"})
REFUSED_STAGES = frozenset({"$out", "$merge", "$lookup", "$unionWith", "$graphLookup"})
INDEX_OPTIONS = frozenset({
    "unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "collation", "hidden",
    "weights", "default_language", "language_override", "2dsphereIndexVersion", "bits", "min",
    "max",
})  # fmt: skip
BASE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{{ experiment.name if experiment else "Experiment" }}{% endblock %}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem}
.muted{color:#666}</style>
{% block head %}{% endblock %}</head>
<body><header>{% block nav %}<strong>{{ experiment.name if experiment else "" }}</strong>
{% endblock %}</header>
<main>{% block content %}{% endblock %}</main>
<footer>{% block footer %}standalone export{% endblock %}</footer>
{% block scripts %}{% endblock %}</body></html>
"""


class ScopeViolation(PermissionError):
    """An operation would leave the experiment's scope; refused before reaching MongoDB."""


def check_name(kind: str, value: Any) -> str:
    if type(value) is not str or not _NAME_RE.fullmatch(value) or len(value) > 120:
        raise ValueError(f"invalid {kind} {value!r}: must match [a-z0-9_]+")
    return value


def resolve_read_scopes(slug: str, data_scope: Iterable[str] | None) -> tuple[str, ...]:
    """``data_scope`` with ``"self"`` replaced by ``slug``; own slug first."""
    scopes = [check_name("slug", slug)]
    for entry in data_scope or ["self"]:
        name = slug if entry == "self" else check_name("slug", entry)
        if name not in scopes:
            scopes.append(name)
    return tuple(scopes)


def _refuse_server_js(value: Any, where: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if key in SERVER_JS_OPERATORS:
                    raise ScopeViolation(f"{where}: server-side JavaScript ({key}) is not allowed")
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _and(user_filter: Any, scope: dict[str, Any], where: str) -> dict[str, Any]:
    if user_filter is None:
        user_filter = {}
    if not isinstance(user_filter, Mapping):
        raise TypeError(f"{where}: the filter must be a document")
    _refuse_server_js(user_filter, where)
    return {"$and": [dict(user_filter), scope]} if user_filter else dict(scope)


def scope_document(document: Any, write_scope: str) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        raise TypeError("documents must be mappings")
    doc = dict(document)
    if doc.get(SCOPE_FIELD, write_scope) != write_scope:
        raise ScopeViolation(f"a document may not claim {SCOPE_FIELD}={doc[SCOPE_FIELD]!r}")
    doc[SCOPE_FIELD] = write_scope
    return doc


def scope_update(update: Any, write_scope: str, *, upsert: bool) -> dict[str, Any]:
    if not isinstance(update, Mapping) or not update:
        raise ScopeViolation("updates must be a non-empty document of update operators")
    out: dict[str, Any] = {}
    for op, fields in update.items():
        if not str(op).startswith("$") or not isinstance(fields, Mapping):
            raise ScopeViolation(f"update operator {op!r} is not supported in scoped updates")
        for name in fields:
            target = fields[name] if op == "$rename" else None
            if str(name).split(".")[0] == SCOPE_FIELD or target == SCOPE_FIELD:
                raise ScopeViolation(f"updates may not change {SCOPE_FIELD}")
        out[op] = dict(fields)
    _refuse_server_js(out, "update")
    if upsert:
        out["$setOnInsert"] = {**out.get("$setOnInsert", {}), SCOPE_FIELD: write_scope}
    return out


class ScopedCursor:
    """The part of a driver cursor experiments use (no way back to the raw collection)."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def _chain(self, method: str, *args: Any) -> ScopedCursor:
        getattr(self._cursor, method)(*args)
        return self

    def sort(self, key: Any, direction: Any = None) -> ScopedCursor:
        return (
            self._chain("sort", key) if direction is None else self._chain("sort", key, direction)
        )

    def skip(self, n: int) -> ScopedCursor:
        return self._chain("skip", n)

    def limit(self, n: int) -> ScopedCursor:
        return self._chain("limit", n)

    def batch_size(self, n: int) -> ScopedCursor:
        return self._chain("batch_size", n)

    async def to_list(self, length: int | None = None) -> list[Any]:
        return await self._cursor.to_list(length)

    def __aiter__(self) -> ScopedCursor:
        return self

    async def __anext__(self) -> Any:
        return await self._cursor.__anext__()

    async def next(self) -> Any:
        return await self._cursor.next()

    async def close(self) -> None:
        await self._cursor.close()


class ScopedCollection:
    """``<owner>_<base>`` seen through the experiment's scopes (see module docstring)."""

    __slots__ = ("_coll", "_read", "_writable", "_write", "name")

    def __init__(self, collection: Any, read_scopes: tuple[str, ...], write_scope: str,
                 writable: bool) -> None:  # fmt: skip
        self._coll = collection
        self._read = {SCOPE_FIELD: {"$in": list(read_scopes)}}
        self._write = {SCOPE_FIELD: write_scope}
        self._writable = writable
        self.name = collection.name

    def __repr__(self) -> str:
        return f"ScopedCollection({self.name!r})"

    def _need_writable(self, op: str) -> None:
        if not self._writable:
            raise ScopeViolation(f"{op}: {self.name} belongs to another experiment (read-only)")

    def _w(self, flt: Any, op: str) -> dict[str, Any]:
        self._need_writable(op)
        return _and(flt, self._write, op)

    def find(self, filter: Any = None, *args: Any, **kwargs: Any) -> ScopedCursor:
        _refuse_server_js((args, kwargs), "find")
        return ScopedCursor(self._coll.find(_and(filter, self._read, "find"), *args, **kwargs))

    async def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        _refuse_server_js((args, kwargs), "find_one")
        return await self._coll.find_one(_and(filter, self._read, "find_one"), *args, **kwargs)

    async def count_documents(self, filter: Any = None, **kwargs: Any) -> int:
        return await self._coll.count_documents(_and(filter, self._read, "count"), **kwargs)

    async def distinct(self, key: str, filter: Any = None, **kwargs: Any) -> list[Any]:
        return await self._coll.distinct(key, _and(filter, self._read, "distinct"), **kwargs)

    async def aggregate(self, pipeline: Any, **kwargs: Any) -> ScopedCursor:
        stages = list(pipeline or [])
        for stage in stages:
            if not isinstance(stage, Mapping) or len(stage) != 1:
                raise ScopeViolation("aggregate: each stage must be a one-key document")
            (name,) = stage
            if name in REFUSED_STAGES:
                raise ScopeViolation(f"aggregate: {name} is not allowed in this standalone app")
        _refuse_server_js(stages, "aggregate")
        scoped = [{"$match": dict(self._read)}, *copy.deepcopy(stages)]
        return ScopedCursor(await self._coll.aggregate(scoped, **kwargs))

    async def insert_one(self, document: Any, **kwargs: Any) -> Any:
        self._need_writable("insert_one")
        return await self._coll.insert_one(scope_document(document, self._write[SCOPE_FIELD]),
                                           **kwargs)  # fmt: skip

    async def insert_many(self, documents: Iterable[Any], **kwargs: Any) -> Any:
        self._need_writable("insert_many")
        docs = [scope_document(d, self._write[SCOPE_FIELD]) for d in documents]
        return await self._coll.insert_many(docs, **kwargs)

    async def update_one(self, filter: Any, update: Any, upsert: bool = False, **kw: Any) -> Any:
        flt = self._w(filter, "update_one")
        upd = scope_update(update, self._write[SCOPE_FIELD], upsert=upsert)
        return await self._coll.update_one(flt, upd, upsert=upsert, **kw)

    async def update_many(self, filter: Any, update: Any, upsert: bool = False, **kw: Any) -> Any:
        flt = self._w(filter, "update_many")
        upd = scope_update(update, self._write[SCOPE_FIELD], upsert=upsert)
        return await self._coll.update_many(flt, upd, upsert=upsert, **kw)

    async def replace_one(self, filter: Any, replacement: Any, upsert: bool = False,
                          **kw: Any) -> Any:  # fmt: skip
        flt = self._w(filter, "replace_one")
        doc = scope_document(replacement, self._write[SCOPE_FIELD])
        return await self._coll.replace_one(flt, doc, upsert=upsert, **kw)

    async def delete_one(self, filter: Any, **kwargs: Any) -> Any:
        return await self._coll.delete_one(self._w(filter, "delete_one"), **kwargs)

    async def delete_many(self, filter: Any, **kwargs: Any) -> Any:
        return await self._coll.delete_many(self._w(filter, "delete_many"), **kwargs)

    async def find_one_and_update(self, filter: Any, update: Any, upsert: bool = False,
                                  **kwargs: Any) -> Any:  # fmt: skip
        flt = self._w(filter, "find_one_and_update")
        upd = scope_update(update, self._write[SCOPE_FIELD], upsert=upsert)
        return await self._coll.find_one_and_update(flt, upd, upsert=upsert, **kwargs)

    async def find_one_and_delete(self, filter: Any, **kwargs: Any) -> Any:
        return await self._coll.find_one_and_delete(self._w(filter, "find_one_and_delete"),
                                                    **kwargs)  # fmt: skip


class ScopedDatabase:
    """``db.clicks`` / ``db["clicks"]`` / ``db.collection("clicks", owner=...)``."""

    __slots__ = ("_cache", "_db", "read_scopes", "write_scope")

    def __init__(self, database: Any, read_scopes: Iterable[str], write_scope: str) -> None:
        self._db = database
        self.write_scope = check_name("slug", write_scope)
        scopes = [write_scope, *(check_name("slug", s) for s in read_scopes)]
        self.read_scopes = tuple(dict.fromkeys(scopes))
        self._cache: dict[tuple[str, str], ScopedCollection] = {}

    def __repr__(self) -> str:
        return f"ScopedDatabase(write_scope={self.write_scope!r})"

    def collection(self, name: str, *, owner: str | None = None) -> ScopedCollection:
        base = check_name("collection name", name)
        owner = self.write_scope if owner is None else check_name("slug", owner)
        if owner not in self.read_scopes:
            raise ScopeViolation(f"{owner!r} is not in the read scopes {list(self.read_scopes)}")
        key = (owner, base)
        if key not in self._cache:
            self._cache[key] = ScopedCollection(self._db[f"{owner}_{base}"], self.read_scopes,
                                                self.write_scope, owner == self.write_scope)  # fmt: skip
        return self._cache[key]

    get_collection = collection

    def __getitem__(self, name: str) -> ScopedCollection:
        return self.collection(name)

    def __getattr__(self, name: str) -> ScopedCollection:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.collection(name)
        except ValueError as exc:
            raise AttributeError(str(exc)) from exc


# ------------------------------------------------------------------------------------------
# The experiment, its actor and the platform dependencies
# ------------------------------------------------------------------------------------------


class ActorHandle:
    """``await handle.call("method", *args)`` like the platform's in-process actors."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        if method.startswith("_"):
            raise AttributeError(f"actor method {method!r} is private")
        result = getattr(self.instance, method)(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result


def experiment_templates(folder: Path) -> Jinja2Templates:
    """The experiment's ``templates/`` plus a minimal ``base.html`` (the platform's layout
    is not exported; an experiment template may override ``base.html`` itself)."""
    loaders: list[Any] = []
    if (folder / "templates").is_dir():
        loaders.append(FileSystemLoader(str(folder / "templates")))
    loaders.append(DictLoader({"base.html": BASE_HTML, "platform/base.html": BASE_HTML}))
    env = Environment(loader=ChoiceLoader(loaders),
                      autoescape=select_autoescape(("html", "htm", "xml"), default_for_string=True))  # fmt: skip
    return Jinja2Templates(env=env)


@dataclass
class Experiment:
    slug: str
    folder: Path
    config: dict[str, Any]
    read_scopes: tuple[str, ...]
    database: Any
    actor: ActorHandle | None = None
    templates: Jinja2Templates = field(init=False)

    def __post_init__(self) -> None:
        self.templates = experiment_templates(self.folder)

    @property
    def static_url(self) -> str:
        return f"/experiments/{self.slug}/static"

    @property
    def public(self) -> dict[str, Any]:
        return {"slug": self.slug, "name": self.config.get("name") or self.slug,
                "description": self.config.get("description") or "",
                "url": f"/experiments/{self.slug}/"}  # fmt: skip

    def scoped_db(self) -> ScopedDatabase:
        return ScopedDatabase(self.database, self.read_scopes, self.slug)


def get_registered_experiment(request: Request) -> Experiment:
    experiment = getattr(request.app.state, "experiment", None)
    if experiment is None:
        raise HTTPException(503, "The experiment is not started")
    return experiment


async def get_experiment_db(request: Request) -> ScopedDatabase:
    return get_registered_experiment(request).scoped_db()


get_experiment_facade = get_experiment_db  # the facade's API is a subset of ScopedDatabase's


def get_experiment_templates(request: Request) -> Jinja2Templates:
    return get_registered_experiment(request).templates


async def get_experiment_config(request: Request) -> dict[str, Any]:
    return copy.deepcopy(get_registered_experiment(request).config)


def get_experiment_actor(request: Request) -> ActorHandle:
    experiment = get_registered_experiment(request)
    if experiment.actor is None:
        raise HTTPException(503, f"Experiment {experiment.slug!r} has no running actor")
    return experiment.actor


async def render_experiment(request: Request, name: str, context: Mapping[str, Any] | None = None,
                            *, status_code: int = 200) -> Response:  # fmt: skip
    experiment = get_registered_experiment(request)
    ctx: dict[str, Any] = {"user": None, "is_admin": False, "can_manage": False,
                           "slug": experiment.slug, "static_url": experiment.static_url,
                           "experiment": experiment.public}  # fmt: skip
    ctx.update(context or {})
    return experiment.templates.TemplateResponse(request, name, ctx, status_code=status_code)


ExperimentDB = Annotated[ScopedDatabase, Depends(get_experiment_db)]
ExperimentFacade = Annotated[ScopedDatabase, Depends(get_experiment_facade)]
ExperimentTemplates = Annotated[Jinja2Templates, Depends(get_experiment_templates)]
ExperimentConfig = Annotated[dict[str, Any], Depends(get_experiment_config)]
ExperimentActorHandle = Annotated[ActorHandle, Depends(get_experiment_actor)]
DEPS_NAMES = (
    "ExperimentActorHandle", "ExperimentConfig", "ExperimentDB", "ExperimentFacade",
    "ExperimentTemplates", "get_experiment_actor", "get_experiment_config", "get_experiment_db",
    "get_experiment_facade", "get_experiment_templates", "get_registered_experiment",
    "render_experiment",
)  # fmt: skip

_actor_clients: dict[str, Any] = {}


def actor_database(mongo_uri: str | None, db_name: str | None, write_scope: str,
                   read_scopes: list[str]) -> ScopedDatabase:  # fmt: skip
    """``platform_core.experiments.actor_db.actor_database`` for out-of-process actors."""
    from pymongo import AsyncMongoClient

    if not mongo_uri or not db_name:
        raise RuntimeError("an out-of-process actor needs mongo_uri and db_name")
    client = _actor_clients.get(mongo_uri)
    if client is None:
        client = _actor_clients[mongo_uri] = AsyncMongoClient(mongo_uri)
    return ScopedDatabase(client[db_name], read_scopes, write_scope)


def install_platform_aliases() -> None:
    """Register this module's pieces under the ``platform_core`` names experiments import.

    Call it before importing the experiment. Only these modules exist under that name in
    the standalone process; importing anything else of ``platform_core`` fails loudly.
    """
    names = {
        "platform_core": {},
        "platform_core.experiments": {},
        "platform_core.experiments.deps": {n: globals()[n] for n in DEPS_NAMES},
        "platform_core.experiments.actor_db": {"actor_database": actor_database},
    }
    modules: dict[str, types.ModuleType] = {}
    for name, attrs in names.items():
        module = types.ModuleType(name, "standalone stand-in (see standalone_runtime.py)")
        module.__dict__.update(attrs)
        if name.count(".") < 2:
            module.__path__ = []  # a package, so its submodules can be imported
        modules[name] = module
        sys.modules[name] = module
    for name, module in modules.items():
        parent, _, leaf = name.rpartition(".")
        if parent:
            setattr(modules[parent], leaf, module)


async def start_actor(package: str, slug: str, read_scopes: tuple[str, ...], database: Any,
                      mongo_uri: str, db_name: str) -> ActorHandle | None:  # fmt: skip
    """Create the experiment's ``ExperimentActor`` in this process (if ``actor.py`` has one)."""
    import importlib

    try:
        module = importlib.import_module(f"{package}.actor")
    except ModuleNotFoundError as exc:
        if exc.name == f"{package}.actor":
            return None
        raise
    actor_class = getattr(module, "ExperimentActor", None)
    if actor_class is None:
        return None
    instance = actor_class(slug=slug, write_scope=slug, read_scopes=list(read_scopes),
                           db=ScopedDatabase(database, read_scopes, slug), mongo_uri=mongo_uri,
                           db_name=db_name)  # fmt: skip
    initialize = getattr(instance, "initialize", None)
    if callable(initialize):
        result = initialize()
        if inspect.isawaitable(result):
            await result
    return ActorHandle(instance)


async def stop_actor(handle: ActorHandle | None) -> None:
    shutdown = getattr(handle.instance, "shutdown", None) if handle else None
    if callable(shutdown):
        result = shutdown()
        if inspect.isawaitable(result):
            await result


# ------------------------------------------------------------------------------------------
# Seeding, indexes, debug summary
# ------------------------------------------------------------------------------------------


def load_json(path: Path) -> Any:
    """MongoDB Extended JSON (ObjectIds and dates come back as such)."""
    return json_util.loads(Path(path).read_text(encoding="utf-8"))


async def seed_database(database: Any, slug: str, config: dict[str, Any],
                        collections: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:  # fmt: skip
    """Insert the exported config and documents that are not there yet (by ``_id``).

    Idempotent: a restart inserts nothing, and documents changed by the running app are
    never overwritten. Only ``<slug>_<base>`` collections and documents of this experiment
    (``experiment_id == slug``) are seeded.
    """
    report: dict[str, Any] = {"config": False, "collections": {}, "skipped": []}
    stored = {k: v for k, v in config.items() if k != "_id"}
    result = await database[CONFIG_COLLECTION].update_one(
        {"slug": slug}, {"$setOnInsert": {**stored, "slug": slug}}, upsert=True
    )
    report["config"] = result.upserted_id is not None
    for name, docs in collections.items():
        base = name[len(slug) + 1 :] if name.startswith(f"{slug}_") else ""
        if not base or not _NAME_RE.fullmatch(base):
            report["skipped"].append(name)
            continue
        ops = []
        for doc in docs:
            if doc.get(SCOPE_FIELD) != slug or "_id" not in doc:
                continue
            body = {k: v for k, v in doc.items() if k != "_id"}
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$setOnInsert": body}, upsert=True))
        inserted = 0
        if ops:
            inserted = (await database[name].bulk_write(ops, ordered=False)).upserted_count
        report["collections"][name] = {"documents": len(ops), "inserted": inserted}
    return report


def _pairs(keys: Any) -> list[tuple[str, Any]]:
    if isinstance(keys, Mapping):
        return [(str(k), v) for k, v in keys.items()]
    return [(str(k), v) for k, v in keys or []]


def _search_parts(slug: str, index: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(name, type, definition) of the Atlas Search indexes behind one managed index."""
    kind = index.get("type")
    if kind != "hybrid":
        return [(f"{slug}_{index.get('name')}", str(kind), index.get("definition"))]
    hybrid = index.get("hybrid") or {}
    parts = []
    for part, sub_kind, suffix in (("vector_index", "vectorSearch", "_vector"),
                                   ("text_index", "search", "_text")):  # fmt: skip
        sub = hybrid.get(part) or {}
        name = f"{slug}_{sub.get('name') or str(index.get('name')) + suffix}"
        parts.append((name, sub_kind, sub.get("definition")))
    return parts


async def apply_managed_indexes(database: Any, slug: str,
                                managed: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:  # fmt: skip
    """Create the manifest's indexes as the platform names them; never raises."""
    from pymongo.operations import SearchIndexModel

    results: list[dict[str, Any]] = []
    for base, indexes in (managed or {}).items():
        coll = database[f"{slug}_{check_name('collection name', base)}"]
        for index in indexes or []:
            name = f"{slug}_{index.get('name')}"
            kind = index.get("type", "regular")
            entry = {"collection": coll.name, "name": name, "type": kind, "status": "created"}
            try:
                if kind in ("regular", "ttl", "partial", "text", "geospatial"):
                    options = {k: v for k, v in (index.get("options") or {}).items()
                               if k in INDEX_OPTIONS}  # fmt: skip
                    await coll.create_index(_pairs(index.get("keys")), name=name, **options)
                elif kind in ("vectorSearch", "search", "hybrid"):
                    for sub_name, sub_kind, definition in _search_parts(slug, index):
                        await coll.create_search_index(SearchIndexModel(
                            definition=definition or {}, name=sub_name, type=sub_kind))  # fmt: skip
                    entry["status"] = "submitted"
                else:
                    entry.update(status="error", message=f"unknown index type {kind!r}")
            except PyMongoError as exc:
                entry.update(status="error", message=str(exc)[:300])
                log.warning("index %s on %s: %s", name, coll.name, exc)
            results.append(entry)
    return results


async def describe_database(database: Any, slug: str) -> dict[str, Any]:
    """Collections of the database with document counts and index names (no documents)."""
    out: dict[str, Any] = {"database": database.name, "slug": slug,
                           "checked_at": datetime.now(UTC).isoformat(), "collections": {}}  # fmt: skip
    for name in sorted(await database.list_collection_names()):
        coll = database[name]
        info = await coll.index_information()
        out["collections"][name] = {"documents": await coll.count_documents({}),
                                    "indexes": sorted(info)}  # fmt: skip
    return out
