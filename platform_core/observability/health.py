"""``/healthz`` and ``/metrics``.

``/healthz`` pings the database on every call (so a load balancer sees an outage within
one server-selection timeout) and reports what a load test needs to prove what it
measured: backend and version, driver, pool settings (configured, and ``pool_effective``
as read back from the client), pool events, loop lag, background tasks, the slow-command
log and the active knob settings. A failed ping answers 503 ``{"status": "error", "db":
"unreachable"}``; the driver reconnects by itself, so the next call after the server
returns is 200 again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pymongo.errors import PyMongoError

from platform_core.db.client import driver_of

router = APIRouter(tags=["operability"])


def effective_pool_options(client: Any) -> dict[str, Any] | None:
    """The pool options the client really uses (read back from the driver, both drivers)."""
    try:
        pool = client.options.pool_options
    except AttributeError:
        return None
    return {
        "maxPoolSize": pool.max_pool_size,
        "minPoolSize": pool.min_pool_size,
        "maxConnecting": pool.max_connecting,
        "waitQueueTimeoutMS": (
            None if pool.wait_queue_timeout is None else pool.wait_queue_timeout * 1000
        ),
        "maxIdleTimeMS": (
            None if pool.max_idle_time_seconds is None else pool.max_idle_time_seconds * 1000
        ),
    }


def _static_facts(request: Request) -> dict[str, Any]:
    state = request.app.state
    settings = state.settings
    backend = getattr(state, "backend", None)
    pool = {k: v for k, v in settings.pool_options().items() if k != "appname"}
    strategies = getattr(state, "strategies", None)
    facts: dict[str, Any] = {
        "environment": settings.environment,
        "backend": backend.as_dict() if backend is not None else None,
        "driver": driver_of(state.client) if getattr(state, "client", None) else None,
        "database": settings.mongodb_db,
        "pool": pool,
        "knobs": dict(getattr(state, "knobs", None) or {}),
        "strategies": strategies.as_dict() if strategies is not None else {},
    }
    client = getattr(state, "client", None)
    if client is not None:
        facts["pool_effective"] = effective_pool_options(client)
    tasks = getattr(state, "tasks", None)
    if tasks is not None:
        facts["tasks"] = tasks.stats()
    actor_clients = getattr(state, "actor_clients", None)
    if actor_clients is not None:
        facts["actor_clients"] = actor_clients.stats()
    slow = getattr(state, "slow_command_log", None)
    facts["slow_command_log"] = (
        None if slow is None else {"observed": slow.observed, "slow": slow.slow_count}
    )
    monitor = getattr(state, "pool_monitor", None)
    if monitor is not None:
        facts["pool_snapshot"] = monitor.snapshot().as_dict()
    lag = getattr(state, "lag_monitor", None)
    if lag is not None:
        facts["loop_lag_ms"] = lag.stats().as_dict()
    return facts


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    state = request.app.state
    client = getattr(state, "client", None)
    facts = _static_facts(request)
    if client is None:
        return JSONResponse({"status": "error", "db": "not started", **facts}, status_code=503)
    timeout = state.settings.mongodb_server_selection_timeout_ms / 1000 + 1.0
    started = time.perf_counter()
    try:
        # The driver gives up after serverSelectionTimeoutMS; wait_for is only a backstop.
        await asyncio.wait_for(client.admin.command("ping"), timeout=timeout)
    except (PyMongoError, TimeoutError) as exc:
        return JSONResponse(
            {"status": "error", "db": "unreachable", "error": type(exc).__name__, **facts},
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )
    ping_ms = (time.perf_counter() - started) * 1000
    return JSONResponse(
        {"status": "ok", "db": "ok", "db_ping_ms": round(ping_ms, 3), **facts},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)
