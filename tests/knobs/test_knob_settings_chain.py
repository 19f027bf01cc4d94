"""``TUNING`` then ``KNOBS`` select every knob's variant in the running app.

The environment alone configures the app (as ``workbench serve --tuning/--set`` does for its
workers). For every knob of the registry the test checks the reported setting
(``app.state.knobs`` and ``/healthz``) AND reads the variant back from the component that
implements it, so a knob that is reported but not wired fails here.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pymongo.errors import OperationFailure

from platform_core.app import create_app
from platform_core.db.client import driver_of
from platform_core.observability.health import effective_pool_options
from platform_core.observability.slow_commands import SlowCommandLog
from platform_core.settings import Settings
from platform_core.tuning import KNOBS
from tests.knobs.conftest import knob_text
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for

# Knobs whose implementation is not read back here (owned and tested elsewhere).
NOT_INSPECTED = {"requirements_parse"}


def _scoped(app: FastAPI) -> Any:
    service = app.state.experiment_service
    return service.scoped_db(service.registry["probe"])


def _manager(app: FastAPI) -> Any:
    service = app.state.experiment_service
    return service.scoped_options["auto_index_factory"](app.state.db["probe_items"])


async def _vector_scope(app: FastAPI) -> str:
    stage: dict[str, Any] = {"index": "v", "path": "e", "queryVector": [0.1], "limit": 1,
                             "numCandidates": 1}  # fmt: skip
    with contextlib.suppress(OperationFailure):  # SecantusDB has no $vectorSearch (code 115)
        await (await _scoped(app).items.aggregate([{"$vectorSearch": stage}])).to_list()
    return "in_place" if "filter" in stage else "copy"


def _pool_size(app: FastAPI) -> str:
    settings = app.state.settings
    pool = effective_pool_options(app.state.client)
    assert pool is not None
    sizes = (pool["maxPoolSize"], pool["minPoolSize"])
    if sizes == (100, 0):
        return "driver_default"
    assert sizes == (settings.mongodb_max_pool_size, settings.mongodb_min_pool_size)
    return "tuned"


def _slow_command_log(app: FastAPI) -> str:
    attached = [
        listener
        for listener in app.state.client.options.event_listeners
        if isinstance(listener, SlowCommandLog)
    ]
    assert (app.state.slow_command_log is None) == (not attached)
    return "on" if attached else "off"


def _index_guard(app: FastAPI) -> str:
    guard = app.state.index_guard  # one per app, the one every scoped database uses
    assert app.state.experiment_service.scoped_options["index_guard"] is guard
    return guard.mode


def _wrapper_cache(app: FastAPI) -> str:
    scoped = _scoped(app)  # one request's scoped database, asked twice for one collection
    return "per_instance" if scoped.collection("x") is scoped.collection("x") else "none"


def _slots(app: FastAPI) -> str:
    service = app.state.experiment_service
    facade = service.facade(service.registry["probe"])
    return "plain" if hasattr(facade, "__dict__") else "slots"


def _template_cache(app: FastAPI) -> str:
    return "none" if app.state.templates.env.bytecode_cache is None else "fs_bytecode_cache"


def _sync(func: Callable[[FastAPI], str]) -> Callable[[FastAPI], Awaitable[str]]:
    async def read(app: FastAPI) -> str:
        return func(app)

    return read


def _service(attr: str) -> Callable[[FastAPI], Awaitable[str]]:
    def read(app: FastAPI) -> str:
        value: Any = app.state.experiment_service
        for part in attr.split("."):
            value = getattr(value, part)
        return str(value)

    return _sync(read)


READERS: dict[str, Callable[[FastAPI], Awaitable[str]]] = {
    "role_checks": _sync(lambda app: app.state.strategies.role_checks),
    "config_cache": _service("config_cache.strategy"),
    "index_guard": _sync(_index_guard),
    "query_tracker": _sync(lambda app: _manager(app).counts_mode),
    "wrapper_cache": _sync(_wrapper_cache),
    "template_cache": _sync(_template_cache),
    "export_build": _service("exports.build_strategy"),
    "dir_scan": _service("file_trees.strategy"),
    "pool_size": _sync(_pool_size),
    "actor_client": _sync(lambda app: app.state.actor_clients.strategy),
    "task_metrics": _sync(lambda app: "on" if app.state.tasks.metrics else "off"),
    "index_tasks": _sync(lambda app: _manager(app).spawn_mode),
    "vector_scope": _vector_scope,
    "routes": _service("routes_strategy"),
    "static_cache": _service("static_strategy"),
    "export_cleanup": _service("exports.cleanup_strategy"),
    "slots": _sync(_slots),
    "slow_command_log": _sync(_slow_command_log),
    "seed_lookup": _service("seed_report.strategy"),
    "autoindex_order": _sync(lambda app: _manager(app).order_mode),
    "driver": _sync(lambda app: driver_of(app.state.client)),
    "password_hashing": _sync(lambda app: app.state.password_hasher.mode),
}


def test_every_knob_has_a_reader_and_a_variant_test() -> None:
    names = {knob.name for knob in KNOBS}
    assert set(READERS) | NOT_INSPECTED == names
    # every knob has equivalence/mechanism tests here, parametrised from the registry
    sources = "".join(p.read_text() for p in Path(__file__).parent.glob("test_knob_*.py"))
    tested = set(re.findall(r'variants_of\("([a-z_]+)"\)', sources))
    assert tested | NOT_INSPECTED == names


def chosen_variants(parity: int) -> tuple[dict[str, str], dict[str, str]]:
    """(KNOBS overrides, expected variants): every other knob overridden to a non-baseline
    variant, the rest left to ``TUNING=baseline``."""
    overrides: dict[str, str] = {}
    expected: dict[str, str] = {}
    for index, knob in enumerate(KNOBS):
        if index % 2 == parity:
            others = [v for v in knob.variants if v != knob.baseline]
            overrides[knob.name] = others[-1]
            expected[knob.name] = others[-1]
        else:
            expected[knob.name] = knob.baseline
    return overrides, expected


@pytest.mark.asyncio
@pytest.mark.parametrize("parity", [0, 1])
async def test_tuning_then_knobs_select_every_variant(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    mongodb_uri: str,
    db_name: str,
    experiments_root: Path,
    parity: int,
) -> None:
    overrides, expected = chosen_variants(parity)
    env = {
        "MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name, "DATA_DIR": str(tmp_path / "data"),
        "EXPERIMENTS_DIR": str(experiments_root), "ENVIRONMENT": "test",
        "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD, "BCRYPT_ROUNDS": "4",
        "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "2000",
        "TUNING": "baseline", "KNOBS": knob_text(overrides),
    }  # fmt: skip
    monkeypatch.delenv("MONGODB_DRIVER", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.active_knobs() == expected
    app = create_app(settings)
    assert app.state.knobs == expected
    async with app.router.lifespan_context(app):
        try:
            await app.state.experiment_service.wait_for_background()
            effective = {name: await read(app) for name, read in READERS.items()}
            assert effective == {k: v for k, v in expected.items() if k not in NOT_INSPECTED}
            async with client_for(app) as http:
                health = (await http.get("/healthz")).json()
            assert health["knobs"] == expected
            assert health["pool_effective"]["maxPoolSize"] == (
                100 if expected["pool_size"] == "driver_default" else 50
            )
            assert health["tasks"]["metrics"] is (expected["task_metrics"] == "on")
            assert health["driver"] == expected["driver"]
        finally:
            await app.state.client.drop_database(db_name)
