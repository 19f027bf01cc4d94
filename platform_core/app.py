"""The application factory: ``create_app(settings) -> FastAPI``.

``app.state`` after the lifespan has started:

==================  ===============================================================
settings            :class:`~platform_core.settings.Settings`
strategies          :class:`PlatformStrategies` (variants of the knobs owned here)
knobs               every knob's active variant (``settings.active_knobs()``)
templates           ``Jinja2Templates`` over ``platform_core/templates``
password_hasher     :class:`~platform_core.auth.passwords.PasswordHasher`
token_codec         :class:`~platform_core.auth.tokens.TokenCodec`
metrics             :class:`~platform_core.observability.metrics.PlatformMetrics`
pool_monitor        :class:`~platform_core.observability.PoolMonitor` (on the client)
lag_monitor         :class:`~platform_core.observability.LoopLagMonitor`
client              the async MongoDB client (pymongo or motor)
slow_command_log    :class:`~platform_core.observability.slow_commands.SlowCommandLog` on
                    the client (and actor clients) if knob ``slow_command_log=on``, else None
tasks               :class:`~platform_core.tasks.TaskManager`: the ONE manager for
                    background work (``metrics`` from knob ``task_metrics``)
index_guard         the app's ``experiment_id`` :class:`~platform_core.db.indexes.IndexGuard`
                    (mode from knob ``index_guard``), used by every scoped database
actor_clients       :class:`~platform_core.db.actor_clients.ActorClients` (knob
                    ``actor_client``): the database handles of experiment actors
actor_pool_monitor  :class:`~platform_core.observability.PoolMonitor` on the actor clients
db                  the platform database (unscoped)
backend             :class:`~platform_core.db.backend.BackendInfo`
authz               :class:`~platform_core.authz.casbin_provider.CasbinProvider`
experiment_service  ``platform_core.experiments.ExperimentService`` if installed, else None
rate_limiter        :class:`~platform_core.ratelimit.RateLimiter` (``RATE_LIMITS_ENABLED``)
events              :class:`~platform_core.events.EventHub` of the admin SSE streams
trusted_proxies     :class:`~platform_core.proxies.TrustedProxies` (``TRUSTED_PROXIES``)
==================  ===============================================================

Startup order: connect and ping (fail fast, naming the host only) → detect backend →
platform indexes → authz provider (loads policies) → seed role policies and the first
admin → loop-lag monitor → the experiments subsystem. Shutdown runs it backwards
(experiments, background tasks, actor clients, loop-lag monitor, client).

Every knob is read from ``settings`` here or in the component that owns it (see
``PlatformStrategies``, ``ExperimentService``), never hard-coded: ``TUNING``/``KNOBS`` (or
``workbench serve --tuning/--set``) select the variants without a code edit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from fastapi import FastAPI

from platform_core.api import admin_users, home, streams
from platform_core.auth import routes as auth_routes
from platform_core.auth.csrf import CrossSiteWriteGuard
from platform_core.auth.passwords import HashingMode, PasswordHasher
from platform_core.auth.tokens import codec_from_settings
from platform_core.authz.casbin_provider import CasbinProvider
from platform_core.authz.role_checks import RoleCheckStrategy
from platform_core.authz.roles import check_startup_safety, seed_admin
from platform_core.bootstrap import ensure_platform_indexes
from platform_core.db.actor_clients import ActorClients
from platform_core.db.backend import detect_backend
from platform_core.db.client import client_from_settings, close_client, ping
from platform_core.db.indexes import make_index_guard
from platform_core.edge import install_edge
from platform_core.errors import install_error_handlers
from platform_core.observability import LoopLagMonitor, PoolMonitor
from platform_core.observability.health import router as health_router
from platform_core.observability.metrics import PlatformMetrics
from platform_core.observability.middleware import RequestContextMiddleware
from platform_core.observability.profiling import ProfilingMiddleware
from platform_core.observability.slow_commands import SlowCommandLog
from platform_core.settings import Settings
from platform_core.tasks import TaskManager
from platform_core.web import TemplateCache, build_templates

log = logging.getLogger(__name__)

EXPERIMENTS_MODULE = "platform_core.experiments"


@dataclass(frozen=True, slots=True)
class PlatformStrategies:
    """Variants of the knobs implemented by the core (names as in the knob registry)."""

    template_cache: TemplateCache = "fs_bytecode_cache"
    password_hashing: HashingMode = "thread"
    role_checks: RoleCheckStrategy = "casbin_memory"

    @classmethod
    def from_knobs(cls, knobs: Mapping[str, str]) -> PlatformStrategies:
        """Pick this class's fields out of a ``{knob: variant}`` mapping (others ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in knobs.items() if k in names})  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, settings: Settings) -> PlatformStrategies:
        """Variants from ``settings.knob(name)`` when the settings offer it, else defaults."""
        knob = getattr(settings, "knob", None)
        if not callable(knob):
            return cls()
        chosen: dict[str, str] = {}
        for f in fields(cls):
            try:
                value = knob(f.name)
            except Exception:  # an unknown knob name: keep the default
                continue
            if isinstance(value, str):
                chosen[f.name] = value
        return cls.from_knobs(chosen)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def create_app(
    settings: Settings | None = None, *, strategies: PlatformStrategies | None = None
) -> FastAPI:
    """Build the platform app; the database is connected when its lifespan starts.

    Raises :class:`~platform_core.authz.roles.StartupRefused` right away for unsafe
    production settings (the default admin password), before anything is started.
    """
    settings = settings or Settings()
    check_startup_safety(settings)
    strategies = strategies or PlatformStrategies.from_settings(settings)
    production = settings.environment == "production"

    app = FastAPI(
        title="platform_core",
        lifespan=_lifespan,
        # The reference served /api/docs publicly; keep it for development only.
        docs_url=None if production else "/api/docs",
        redoc_url=None,
        openapi_url=None if production else "/api/openapi.json",
    )
    state = app.state
    state.settings = settings
    state.strategies = strategies
    # The active knob variants, reported on /healthz so a load test can prove its setup.
    active_knobs = getattr(settings, "active_knobs", None)
    state.knobs = dict(active_knobs()) if callable(active_knobs) else {}
    state.templates = build_templates(settings, strategies.template_cache)
    state.password_hasher = PasswordHasher(settings.bcrypt_rounds, strategies.password_hashing)
    state.token_codec = codec_from_settings(settings)
    state.pool_monitor = PoolMonitor()
    # A heartbeat every 50 ms; the last 12 000 beats (~10 minutes) make up the figures.
    state.lag_monitor = LoopLagMonitor(interval=0.05, keep=12_000)
    state.metrics = PlatformMetrics(lambda: app.state)
    # Knob slow_command_log (report 10.1): a command listener on the client, or nothing.
    state.slow_command_log = (
        SlowCommandLog(
            threshold_ms=getattr(settings, "slow_command_threshold_ms", 100.0),
            registry=state.metrics.registry,
        )
        if _knob(settings, "slow_command_log", "on") == "on"
        else None
    )
    # Knob task_metrics (report 4.3): the one task manager of the app times its tasks or not.
    state.tasks = TaskManager(
        metrics=_knob(settings, "task_metrics", "on") == "on", registry=state.metrics.registry
    )
    # Knob index_guard (report 1.3/5.2): one guard per app, shared by every scoped database.
    state.index_guard = make_index_guard(_knob(settings, "index_guard", "once_per_process"))
    # Knob actor_client (report 4.2): actors get their database handles from here.
    state.actor_pool_monitor = PoolMonitor()
    actor_listeners: list[object] = [state.actor_pool_monitor]
    if state.slow_command_log is not None:
        actor_listeners.append(state.slow_command_log)
    state.actor_clients = ActorClients(
        settings,
        strategy=_knob(settings, "actor_client", "shared"),  # type: ignore[arg-type]
        event_listeners=actor_listeners,
    )
    state.client = state.db = state.authz = state.backend = None
    state.experiment_service = None
    state.seed_report = None

    install_error_handlers(app)
    # Starlette runs the last added middleware outermost: request context (ids, command
    # counts, metrics, 500s) wraps the cross-site guard, which wraps the profiler.
    app.add_middleware(ProfilingMiddleware, enabled=lambda: app.state.settings.profiling_enabled)
    app.add_middleware(CrossSiteWriteGuard)
    app.add_middleware(RequestContextMiddleware, metrics=state.metrics)
    # Outermost: GZip, trusted proxy headers, HSTS in production; limiter and event hub.
    install_edge(app)

    app.include_router(health_router)
    app.include_router(auth_routes.router)
    app.include_router(home.router)
    app.include_router(admin_users.router)
    app.include_router(streams.router)
    return app


def _knob(settings: Settings, name: str, default: str) -> str:
    """``settings.knob(name)``, or ``default`` for settings objects without knobs."""
    knob = getattr(settings, "knob", None)
    return str(knob(name)) if callable(knob) else default


def _load_experiment_service_class() -> type | None:
    """``ExperimentService`` if the experiments subsystem is installed, else ``None``.

    Only the absence of that module (or of the name in it) is tolerated; an import error
    *inside* the subsystem is a bug and propagates.
    """
    try:
        from platform_core.experiments import ExperimentService  # type: ignore[attr-defined]
    except ImportError as exc:
        if exc.name == EXPERIMENTS_MODULE:
            log.info("experiments subsystem not installed; starting without it")
            return None
        raise
    return ExperimentService


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = app.state
    settings: Settings = state.settings
    strategies: PlatformStrategies = state.strategies
    listeners: list[object] = [state.pool_monitor]
    if state.slow_command_log is not None:
        listeners.append(state.slow_command_log)
    client = client_from_settings(settings, event_listeners=listeners)
    service: Any = None
    service_started = False
    try:
        await ping(client, settings.mongodb_uri)
        state.client = client
        state.backend = await detect_backend(client)
        state.db = db = client[settings.mongodb_db]
        await ensure_platform_indexes(db)
        state.authz = authz = await CasbinProvider.create(
            db,
            cache_ttl_seconds=settings.authz_cache_ttl_seconds,
            cache_max_size=settings.authz_cache_max_size,
        )
        state.seed_report = await seed_admin(
            db, authz, state.password_hasher, settings, strategy=strategies.role_checks
        )
        state.lag_monitor.start()
        service_cls = _load_experiment_service_class()
        if service_cls is not None:
            service = state.experiment_service or service_cls(app)
            if state.experiment_service is None:
                state.experiment_service = service
                app.include_router(service.router)
            await service.startup()
            service_started = True
        log.info(
            "platform ready: %s, database %s, driver %s",
            state.backend.label, settings.mongodb_db, settings.driver,
        )  # fmt: skip
        yield
    finally:
        state.events.close()  # open event streams end now, not after the DB is gone
        try:
            if service_started:
                await service.shutdown()
        finally:
            try:
                await state.tasks.shutdown()
                await state.actor_clients.close_all()
            finally:
                await state.lag_monitor.stop()
                await close_client(client)
                state.client = state.db = None
