"""``ExperimentService``: discovery, seeding, registration and everything that hangs off it.

The app core builds one per app (``ExperimentService(app)``), includes ``service.router``
(admin and developer API) and awaits ``startup()``/``shutdown()`` in its lifespan.
Everything else is read from ``app.state`` (``settings``, ``db``, ``authz``...).

There is ONE registration path (the reference had two diverging copies, spec 2.14/9):
:meth:`register` for one slug and :meth:`reload_all` for every active config both end in
:meth:`_register`, which validates, resolves scopes, imports the code fresh, builds the
route set, (re)creates the actor and swaps the registry entry in one assignment, then
invalidates the config, dir-scan and (by construction) route caches together.

Strategy parameters default to the settings' active knob variants (``TUNING``/``KNOBS``)
and can be forced per instance (studies, tests); see :class:`ServiceStrategies`.

The data-layer knobs reach every scoped database the service builds (per request through
``get_experiment_db``, and for in-process actors) through :attr:`scoped_options`:
``index_guard`` (the app's guard), ``query_tracker``/``autoindex_order``/``index_tasks``
(:func:`~platform_core.db.autoindex.auto_index_factory`), ``wrapper_cache`` and
``vector_scope``; knob ``slots`` picks the ``ExperimentDB`` facade classes
(:meth:`facade`). Actors get their database handles from ``app.state.actor_clients``
(knob ``actor_client``) and background work runs through ``app.state.tasks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from prometheus_client import CollectorRegistry

from platform_core.admin.files import FileTreeCache
from platform_core.db.autoindex import auto_index_factory
from platform_core.db.facade import experiment_db
from platform_core.db.indexes import make_index_guard
from platform_core.db.scoped import ScopedDatabase
from platform_core.db.slugs import validate_slug
from platform_core.events import notify
from platform_core.experiments import loader
from platform_core.experiments.actors import (
    ActorSpec,
    code_fingerprint,
    make_actor_runtime,
)
from platform_core.experiments.config_cache import CONFIG_COLLECTION, ExperimentConfigCache
from platform_core.experiments.discovery import (
    SeedReport,
    discover,
    experiments_root,
    folder_for,
    seed_configs,
)
from platform_core.experiments.indexes import apply_managed_indexes
from platform_core.experiments.manifest import ManifestError, validate_manifest
from platform_core.experiments.registry import (
    ExperimentDispatcher,
    RegisteredExperiment,
    binder,
    build_route_set,
    count_routes,
)
from platform_core.experiments.scopes import resolve_read_scopes
from platform_core.experiments.sub_auth import experiment_auth_guard, sub_auth_router
from platform_core.experiments.templating import experiment_templates
from platform_core.export.manager import ExportManager
from platform_core.settings import Settings
from platform_core.tasks import TaskManager

log = logging.getLogger(__name__)

MAX_ACTIVE = 500
_INTERNAL_FIELDS = ("_id", "created_at", "updated_at", "source", "url", "resolved_read_scopes")
# Knobs of the data layer that the service applies to the scoped databases it builds.
DATA_LAYER_KNOBS = ("index_guard", "query_tracker", "autoindex_order", "index_tasks",
                    "wrapper_cache", "vector_scope", "slots")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ServiceStrategies:
    """Knob variants used by the experiments subsystem (names as in the knob registry)."""

    routes: str = "replace"  # 7.1: "append" (baseline) | "replace"
    config_cache: str = "request_ttl_singleflight"  # 1.2/2.1: none|request|request_ttl|...
    static_cache: str = "cached"  # 7.2: "plain" (baseline) | "cached"
    seed_lookup: str = "in_query"  # extra 6.1: "per_folder" (baseline) | "in_query"
    dir_scan: str = "ttl"  # 3.3: "uncached" (baseline) | "ttl"
    export_build: str = "thread"  # 3.1: "on_loop" (baseline) | "thread"
    export_cleanup: str = "thread"  # 8.1: "on_loop" (baseline) | "thread"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: str | None) -> ServiceStrategies:
        chosen: dict[str, str] = {}
        try:
            active = settings.active_knobs()
        except Exception:  # settings without the knob registry: keep the defaults
            active = {}
        for f in fields(cls):
            if overrides.get(f.name):
                chosen[f.name] = str(overrides[f.name])
            elif f.name in active:
                chosen[f.name] = active[f.name]
        return cls(**chosen)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class ExperimentService:
    """The experiments subsystem of one app (see module docstring)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        routes_strategy: str | None = None,
        config_cache_strategy: str | None = None,
        static_strategy: str | None = None,
        seed_lookup: str | None = None,
        dir_scan_strategy: str | None = None,
        export_build_strategy: str | None = None,
        export_cleanup_strategy: str | None = None,
        actor_runtime: str | None = None,
        experiments_dir: Path | str | None = None,
        static_max_age: int = 3600,
    ) -> None:
        self.app = app
        settings: Settings = app.state.settings
        self.settings = settings
        self.strategies = ServiceStrategies.from_settings(
            settings,
            routes=routes_strategy,
            config_cache=config_cache_strategy,
            static_cache=static_strategy,
            seed_lookup=seed_lookup,
            dir_scan=dir_scan_strategy,
            export_build=export_build_strategy,
            export_cleanup=export_cleanup_strategy,
        )
        if self.strategies.routes not in ("replace", "append"):
            raise ValueError(f"unknown routes strategy {self.strategies.routes!r}")
        if self.strategies.static_cache not in ("plain", "cached"):
            raise ValueError(f"unknown static strategy {self.strategies.static_cache!r}")
        self.root = (
            Path(experiments_dir).resolve() if experiments_dir else experiments_root(settings)
        )
        self.static_max_age = static_max_age
        self.registry: dict[str, RegisteredExperiment] = {}
        self.errors: dict[str, str] = {}
        self.index_reports: dict[str, list[dict[str, Any]]] = {}
        self.seed_report: SeedReport | None = None
        self.config_cache = ExperimentConfigCache(
            collection_getter=lambda: self.db[CONFIG_COLLECTION],
            strategy=self.strategies.config_cache,
            ttl_seconds=settings.experiment_config_cache_ttl_seconds,
            max_size=settings.experiment_config_cache_max_size,
        )
        self.file_trees = FileTreeCache(self.strategies.dir_scan)
        # Data-layer knobs: one guard per app (app.state), options for every scoped DB.
        self.data_knobs = {name: settings.knob(name) for name in DATA_LAYER_KNOBS}
        state = app.state
        guard = getattr(state, "index_guard", None) or make_index_guard(
            self.data_knobs["index_guard"]
        )
        self.index_guard = guard
        self.scoped_options: dict[str, Any] = {
            "index_guard": guard,
            "auto_index_factory": auto_index_factory(settings),
            "cache_wrappers": self.data_knobs["wrapper_cache"] == "per_instance",
            "vector_scope": self.data_knobs["vector_scope"],
        }
        tasks = getattr(state, "tasks", None)
        if tasks is None:  # an app without the core's task manager (never in create_app)
            tasks = TaskManager(metrics=settings.knob("task_metrics") == "on",
                                registry=CollectorRegistry())  # fmt: skip
        self.tasks: TaskManager = tasks
        self.actors = make_actor_runtime(
            actor_runtime or settings.actor_runtime, db_factory=self._actor_db
        )
        self.exports = ExportManager(
            db_getter=lambda: self.db,
            exports_dir=Path(settings.data_dir).resolve() / "exports",
            build_strategy=self.strategies.export_build,
            cleanup_strategy=self.strategies.export_cleanup,
            retention_hours=settings.export_retention_hours,
            cleanup_interval_seconds=settings.export_cleanup_interval_seconds,
            dump_limit=settings.export_dump_limit,
            task_manager=self.tasks,
        )
        self.dispatcher = ExperimentDispatcher(self)
        self._lock = asyncio.Lock()
        self._generation = 0
        self._index_fingerprints: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.router = self._build_router()

    @classmethod
    def install(cls, app: FastAPI, **options: Any) -> ExperimentService:
        """Build a service with explicit strategies and attach it to ``app`` *before* the
        lifespan starts (the app core then uses it instead of building a default one)."""
        service = cls(app, **options)
        app.state.experiment_service = service
        app.include_router(service.router)
        return service

    # -- convenience -------------------------------------------------------------------------
    @property
    def db(self) -> Any:
        db = self.app.state.db
        if db is None:
            raise RuntimeError("the platform database is not connected yet")
        return db

    @property
    def routes_strategy(self) -> str:
        return self.strategies.routes

    @property
    def static_strategy(self) -> str:
        return self.strategies.static_cache

    def folder(self, slug: str) -> Path:
        """The experiment folder of a validated slug (never outside the root)."""
        return folder_for(self.root, slug)

    def known_slugs(self) -> set[str]:
        """Slugs with a folder or a registration: the owners considered for collections."""
        slugs = set(self.registry)
        if self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.is_dir() and not entry.name.startswith(("_", ".")):
                    with contextlib.suppress(ValueError):
                        slugs.add(validate_slug(entry.name))
        return slugs

    def scoped_db(self, entry: RegisteredExperiment) -> ScopedDatabase:
        """The request's scoped database, built with the data-layer knobs in force."""
        return ScopedDatabase(self.db, entry.read_scopes, entry.slug, known_slugs=self.registry,
                              **self.scoped_options)  # fmt: skip

    def facade(self, entry: RegisteredExperiment) -> Any:
        """An ``ExperimentDB`` facade over :meth:`scoped_db` (knob ``slots``)."""
        return experiment_db(self.scoped_db(entry), self.data_knobs["slots"])

    def _actor_db(self, spec: ActorSpec) -> ScopedDatabase:
        """An in-process actor's scoped database, on a client from ``app.state.actor_clients``
        (knob ``actor_client``: a new client per actor database, or one shared client)."""
        clients = getattr(self.app.state, "actor_clients", None)
        database = self.db if clients is None else clients.database(self.settings.mongodb_db)
        return ScopedDatabase(database, spec.read_scopes, spec.write_scope, **self.scoped_options)

    def route_count(self) -> int:
        """Effective routes of the app (the route-growth metric of knob 7.1)."""
        return count_routes(self.app.router.routes)

    def experiment_route_count(self, slug: str) -> int:
        """Routes that serve ``slug``: its route set (replace) or every inclusion (append)."""
        prefix = f"/experiments/{slug}/"
        if self.routes_strategy == "replace":
            entry = self.registry.get(slug)
            return count_routes(entry.router.routes) if entry and entry.router else 0
        try:
            from fastapi.routing import _iter_routes_with_context
        except ImportError:  # older FastAPI copies routes on inclusion

            def _iter_routes_with_context(routes: Any) -> Any:
                return ((route, None) for route in routes)

        return sum(
            1
            for route, ctx in _iter_routes_with_context(list(self.app.router.routes))
            if str(getattr(ctx, "path", None) or getattr(route, "path", "")).startswith(prefix)
            or str(getattr(ctx, "path", None) or getattr(route, "path", "")) == prefix[:-1]
        )

    def stats(self) -> dict[str, Any]:
        return {
            "strategies": self.strategies.as_dict(),
            "registered": sorted(self.registry),
            "errors": dict(self.errors),
            "routes": self.route_count(),
            "config_cache": self.config_cache.stats(),
            "file_trees": self.file_trees.stats(),
            "actors": self.actors.stats(),
            "data_layer": dict(self.data_knobs),
            "index_guard": self.index_guard.stats.as_dict(),
            "tasks": self.tasks.stats(),
        }

    def _build_router(self) -> APIRouter:
        from platform_core.admin.routes import build_admin_router
        from platform_core.admin.upload_routes import build_developer_router

        router = APIRouter()
        router.include_router(build_admin_router(self))
        router.include_router(build_developer_router(self))
        return router

    # -- lifecycle ---------------------------------------------------------------------------
    def _install_dispatcher(self) -> None:
        routes = self.app.router.routes
        if self.dispatcher not in routes:
            routes.insert(0, self.dispatcher)
            mark = getattr(self.app.router, "_mark_routes_changed", None)
            if callable(mark):
                mark()

    async def startup(self) -> None:
        """Seed configs from the folder, register every active experiment, start cleanup."""
        self._install_dispatcher()
        discovered = await asyncio.to_thread(discover, self.root)
        self.seed_report = await seed_configs(
            self.db, discovered, strategy=self.strategies.seed_lookup
        )
        await self.reload_all()
        self.exports.start_cleanup_loop()

    async def shutdown(self) -> None:
        await self.exports.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self.actors.shutdown()
        for slug in list(self.registry):
            loader.unload(slug)
        self.registry.clear()

    async def wait_for_background(self) -> None:
        """Wait for pending managed-index tasks (tests, studies)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> bool:
        """Run ``coro`` through the app's task manager; False if it refused (full)."""
        task = self.tasks.spawn(coro, name)
        if task is None:
            return False
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    # -- registration ----------------------------------------------------------------------------
    async def reload_all(self) -> dict[str, Any]:
        """Register every active config (≤500) and unregister everything else."""
        async with self._lock:
            cursor = self.db[CONFIG_COLLECTION].find({"status": "active"}).limit(MAX_ACTIVE)
            active: dict[str, dict[str, Any]] = {}
            async for config in cursor:
                slug = config.get("slug")
                try:
                    active[validate_slug(slug)] = config
                except ValueError as exc:
                    log.warning("config with invalid slug %r ignored: %s", slug, exc)
            for slug in list(self.registry):
                if slug not in active:
                    await self._unregister(slug)
            for slug, config in active.items():
                await self._register(slug, config)
        notify(self.app, "indexes", reason="reload_all", slugs=sorted(self.registry))
        return {"registered": sorted(self.registry), "errors": dict(self.errors)}

    async def register(self, slug: str) -> RegisteredExperiment | None:
        """(Re)register one slug from its current config (unregisters it if not active)."""
        validate_slug(slug)
        async with self._lock:
            config = await self.db[CONFIG_COLLECTION].find_one({"slug": slug})
            if config is None or config.get("status") != "active":
                await self._unregister(slug)
                entry = None
            else:
                entry = await self._register(slug, config)
        notify(self.app, "indexes", reason="reload", slugs=[slug], registered=entry is not None)
        return entry

    async def unregister(self, slug: str) -> bool:
        validate_slug(slug)
        async with self._lock:
            removed = await self._unregister(slug)
        notify(self.app, "indexes", reason="unregistered", slugs=[slug])
        return removed

    async def _unregister(self, slug: str) -> bool:
        entry = self.registry.pop(slug, None)
        await self.actors.stop(slug)
        loader.unload(slug)
        self.config_cache.invalidate(slug)
        self.file_trees.invalidate(slug)
        return entry is not None

    async def _register(self, slug: str, config: dict[str, Any]) -> RegisteredExperiment | None:
        self.errors.pop(slug, None)
        try:
            return await self._register_checked(slug, config)
        except Exception as exc:  # one broken experiment must not stop the others
            log.warning("experiment %s not registered: %s", slug, exc)
            self.errors[slug] = str(exc)
            await self._unregister(slug)
            return None

    async def _register_checked(
        self, slug: str, config: dict[str, Any]
    ) -> RegisteredExperiment | None:
        folder = self.folder(slug)
        if not folder.is_dir():
            raise FileNotFoundError(f"experiment folder {slug}/ not found (orphaned config)")
        try:
            validate_manifest({k: v for k, v in config.items() if k not in _INTERNAL_FIELDS})
        except ManifestError as exc:
            raise ValueError(f"stored config is invalid: {exc}") from None
        read_scopes = await self._existing_scopes(slug, config.get("data_scope"))
        module = loader.load_package(slug, folder)
        bp = getattr(module, "bp", None)
        if not isinstance(bp, APIRouter):
            raise TypeError(f"experiment {slug!r}: __init__.py must define bp = APIRouter()")
        bind = Depends(binder(self, slug))
        # The experiment's guard is chosen here, in sub_auth (spec 2.10); login routes of
        # sub_auth experiments are mounted beside bp, outside that guard.
        dependencies = [bind, Depends(experiment_auth_guard(slug, config))]
        public = sub_auth_router(slug, config)
        route_set: APIRouter | None = None
        if self.routes_strategy == "replace":
            route_set = build_route_set(slug, bp, dependencies, public=public,
                                        public_dependencies=[bind])  # fmt: skip
        else:  # the reference's behaviour: include again, never remove (spec 6.14)
            if public is not None:
                self.app.include_router(public, prefix=f"/experiments/{slug}", dependencies=[bind])
            self.app.include_router(bp, prefix=f"/experiments/{slug}", dependencies=dependencies)
        self._generation += 1
        fingerprint = await asyncio.to_thread(code_fingerprint, folder)
        entry = RegisteredExperiment(
            slug=slug,
            config=config,
            folder=folder,
            read_scopes=read_scopes,
            module=module,
            bp=bp,
            router=route_set,
            templates=experiment_templates(folder),
            generation=self._generation,
            code_fingerprint=fingerprint,
        )
        await self._ensure_actor(entry)
        self.registry[slug] = entry  # the atomic swap
        self.config_cache.invalidate(slug)
        self.file_trees.invalidate(slug)
        self._schedule_indexes(slug, config.get("managed_indexes") or {})
        return entry

    async def _existing_scopes(self, slug: str, data_scope: Any) -> tuple[str, ...]:
        resolved = resolve_read_scopes(slug, data_scope)
        others = [s for s in resolved if s != slug]
        if not others:
            return resolved
        found = await self.config_cache.get_many(others)
        dropped = [s for s in others if s not in found]
        if dropped:
            log.warning("experiment %s: data_scope entries without config ignored: %s", slug,
                        dropped)  # fmt: skip
        return tuple(s for s in resolved if s == slug or s in found)

    async def _ensure_actor(self, entry: RegisteredExperiment) -> None:
        module = loader.load_submodule(entry.slug, "actor")
        actor_class = getattr(module, "ExperimentActor", None) if module else None
        if actor_class is None:
            await self.actors.stop(entry.slug)
            return
        spec = ActorSpec(
            slug=entry.slug,
            actor_class=actor_class,
            write_scope=entry.slug,
            read_scopes=entry.read_scopes,
            code_fingerprint=entry.code_fingerprint,
            mongo_uri=self.settings.mongodb_uri,
            db_name=self.settings.mongodb_db,
        )
        await self.actors.ensure(spec)

    def _schedule_indexes(self, slug: str, managed: dict[str, Any]) -> None:
        fingerprint = json.dumps(managed, sort_keys=True, default=str)
        if not managed or self._index_fingerprints.get(slug) == fingerprint:
            return
        self._index_fingerprints[slug] = fingerprint

        async def run() -> None:
            results = await apply_managed_indexes(self.db, slug, managed)
            self.index_reports[slug] = [r.as_dict() for r in results]
            notify(self.app, "indexes", reason="indexes_applied", slugs=[slug])

        if not self._spawn(run(), f"managed-indexes:{slug}"):
            self._index_fingerprints.pop(slug, None)  # refused: the next registration retries

    def forget_indexes(self, slug: str) -> None:
        self._index_fingerprints.pop(slug, None)
        self.index_reports.pop(slug, None)

    # -- cache invalidation shared by admin routes --------------------------------------------
    def invalidate(self, slug: str) -> None:
        """Config, dir-scan and authz caches of ``slug`` together (spec 9)."""
        self.config_cache.invalidate(slug)
        self.file_trees.invalidate(slug)
        authz = getattr(self.app.state, "authz", None)
        clear = getattr(authz, "clear_cache", None)
        if callable(clear):
            clear()
