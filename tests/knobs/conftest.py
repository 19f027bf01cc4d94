"""Fixtures for the knob tests: apps configured ONLY through settings (``KNOBS``/``TUNING``).

Every test here builds its app with ``create_app(Settings(..., knobs="name=variant"))`` and
nothing else: no strategy objects, no ``ExperimentService.install`` options. A test that
passes therefore proves the knob reaches the running platform from configuration alone.

Variants are taken from the registry (``variants_of``), so a new variant of a knob is
covered automatically by every parametrised test of that knob.

The experiments folder holds copies of the samples plus ``probe``, a small experiment
whose routes report what the data layer handed them (facade class, wrapper identity,
auto-index counters, pipeline mutation), so the data-layer knobs are observed through
real HTTP requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from platform_core.app import create_app
from platform_core.experiments.testing import copy_samples
from platform_core.observability import LagStats, LoopLagMonitor
from platform_core.settings import Settings
from platform_core.tuning import get_knob
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for, login

PROBE_MANIFEST = """{
  "slug": "probe", "name": "Knob probe", "status": "active", "auth_required": false,
  "managed_indexes": {"items": [{"name": "n", "type": "regular", "keys": {"n": 1}}]}
}
"""

PROBE_INIT = """
from typing import Any

from fastapi import APIRouter
from pymongo.errors import OperationFailure

from platform_core.experiments.deps import ExperimentDB, ExperimentFacade

bp = APIRouter()


@bp.get("/api/facts")
async def facts(db: ExperimentDB, fdb: ExperimentFacade) -> dict[str, Any]:
    return {
        "facade": type(fdb).__name__,
        "facade_has_dict": hasattr(fdb, "__dict__"),
        "collection_has_dict": hasattr(fdb.items, "__dict__"),
        "wrapper_cached": db.collection("items") is db.collection("items"),
    }


@bp.post("/api/items", status_code=201)
async def add(db: ExperimentDB, n: int) -> dict[str, Any]:
    await db.items.insert_one({"n": n})
    return {"ok": True}


@bp.get("/api/items")
async def items(fdb: ExperimentFacade) -> dict[str, Any]:
    docs = await fdb.items.find({}, {"_id": 0}).sort("n", 1).to_list()
    return {"items": docs, "count": await fdb.items.count_documents({})}


@bp.post("/api/vector")
async def vector(db: ExperimentDB) -> dict[str, Any]:
    stage = {"index": "v", "path": "e", "queryVector": [0.1, 0.2], "numCandidates": 5,
             "limit": 1, "filter": {"n": 1}}
    pipeline = [{"$vectorSearch": stage}]
    error = None
    try:
        await (await db.items.aggregate(pipeline)).to_list()
    except OperationFailure as exc:
        error = exc.code
    return {"filter_after": stage["filter"], "error": error}


@bp.post("/api/shapes")
async def shapes(db: ExperimentDB, n: int, distinct: bool) -> dict[str, Any]:
    coll = db.collection("shapes")
    for i in range(n):
        coll.find({f"f{i}": 1} if distinct else {"zeta": 1, "alpha": {"$gt": 1}, "mid": 2})
    await coll.drain_index_tasks()
    return coll.auto_index_stats or {}
"""


def variants_of(name: str) -> tuple[str, ...]:
    """The knob's variants, from the registry (parametrise tests with this)."""
    return get_knob(name).variants


def write_probe(root: Path) -> None:
    folder = root / "probe"
    (folder / "static").mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(PROBE_MANIFEST)
    (folder / "__init__.py").write_text(PROBE_INIT)
    (folder / "static" / "app.js").write_text("console.log('probe');\n")


@pytest.fixture
def experiments_root(tmp_path: Path) -> Path:
    root = copy_samples(tmp_path / "experiments")
    write_probe(root)
    return root


@pytest.fixture
def knob_settings(
    tmp_path: Path, mongodb_uri: str, db_name: str, experiments_root: Path
) -> Settings:
    """The platform test settings (bcrypt at 4 rounds) with the probe's experiments folder."""
    return Settings(
        mongodb_uri=mongodb_uri,
        mongodb_db=db_name,
        data_dir=tmp_path / "data",
        experiments_dir=experiments_root,
        environment="test",
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        bcrypt_rounds=4,
        mongodb_server_selection_timeout_ms=2000,
    )


def knob_text(knobs: Mapping[str, str] | str) -> str:
    if isinstance(knobs, str):
        return knobs
    return ",".join(f"{name}={variant}" for name, variant in knobs.items())


def configure(base: Settings, knobs: Mapping[str, str] | str = "", **updates: Any) -> Settings:
    """``base`` with ``KNOBS`` (and other fields) replaced, validated like the environment."""
    values = {**base.model_dump(), "knobs": knob_text(knobs), **updates}
    return Settings(**values)


@contextlib.asynccontextmanager
async def running(
    base: Settings, knobs: Mapping[str, str] | str = "", *, keep_db: bool = False, **updates: Any
) -> AsyncIterator[FastAPI]:
    """A started ``create_app(settings)``; its database is dropped on exit."""
    settings = configure(base, knobs, **updates)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        try:
            service = app.state.experiment_service
            if service is not None:
                await service.wait_for_background()  # managed indexes built before traffic
            yield app
        finally:
            if not keep_db:
                await app.state.client.drop_database(settings.mongodb_db)


@contextlib.asynccontextmanager
async def admin_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client logged in as the seeded admin."""
    async with client_for(app) as client:
        await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        yield client


async def lag_during(work: Awaitable[Any], interval: float = 0.001) -> tuple[Any, LagStats]:
    """Run ``work`` under a loop-lag heartbeat; returns its result and the lag figures.

    The heartbeat keeps beating briefly after ``work`` so that a beat blocked by it is
    recorded (a monitor stopped at once would lose exactly the late beat).
    """
    gc.collect()  # start from a clean heap: a collection pause is not the knob's doing
    monitor = LoopLagMonitor(interval=interval)
    async with monitor:
        await asyncio.sleep(interval * 3)
        result = await work
        await asyncio.sleep(interval * 5)
    return result, monitor.stats()
