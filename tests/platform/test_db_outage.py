"""The database goes away and comes back: 503s while it is down, recovery without restart.

Uses its own SecantusDB process (never the session one, which other tests share).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from bench.embedded_db import EmbeddedDBError, EmbeddedMongo
from platform_core.app import create_app
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for, login

SELECTION_MS = 1000


def _restart_on(port: int, deadline: float = 30.0) -> EmbeddedMongo:
    """A new server on the same port (retrying while the old socket lingers)."""
    end = time.monotonic() + deadline
    while True:
        server = EmbeddedMongo(port=port)
        try:
            server.start()
            return server
        except EmbeddedDBError:
            if time.monotonic() > end:
                raise
            time.sleep(0.5)


async def _poll(client: httpx.AsyncClient, path: str, status: int, limit: float) -> float:
    started = time.perf_counter()
    while True:
        r = await client.get(path)
        if r.status_code == status:
            return time.perf_counter() - started
        if time.perf_counter() - started > limit:
            raise AssertionError(f"{path} still {r.status_code} after {limit} s: {r.text[:200]}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(180)
@pytest.mark.asyncio
async def test_outage_gives_503_and_recovers_without_restart(tmp_path: Path) -> None:
    first = EmbeddedMongo()
    await asyncio.to_thread(first.start)
    port = first.port
    assert port is not None
    second: EmbeddedMongo | None = None
    settings = Settings(
        mongodb_uri=first.uri,
        mongodb_db="outage_test",
        data_dir=tmp_path,
        environment="test",
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        bcrypt_rounds=4,
        mongodb_server_selection_timeout_ms=SELECTION_MS,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app), client_for(app) as http:
            await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/admin/api/users")).status_code == 200

            await asyncio.to_thread(first.stop)

            started = time.perf_counter()
            health = await http.get("/healthz")
            elapsed = time.perf_counter() - started
            assert health.status_code == 503
            body = health.json()
            assert body["status"] == "error" and body["db"] == "unreachable"
            assert elapsed < SELECTION_MS / 1000 + 2.0, elapsed

            started = time.perf_counter()
            api = await http.get("/admin/api/users")
            assert api.status_code == 503
            assert api.json() == {"detail": "Database unavailable, try again shortly",
                                  "status": "error"}  # fmt: skip
            assert api.headers["retry-after"] == "5"
            page = await http.get("/")
            assert page.status_code == 503 and "text/html" in page.headers["content-type"]
            assert time.perf_counter() - started < 2 * (SELECTION_MS / 1000 + 2.0)
            # Pages that need no database still work during the outage.
            assert (await http.get("/auth/login")).status_code == 200

            second = await asyncio.to_thread(_restart_on, port)
            await _poll(http, "/healthz", 200, limit=30)
            # The new server is empty (:memory:), but the app serves again without restart.
            assert (await http.get("/")).status_code == 200
            listing = await http.get("/admin/api/users")
            assert listing.status_code == 200 and listing.json()["count"] == 0
    finally:
        # The web app is stopped first (leaving the lifespan above), then the databases.
        for db_server in (first, second):
            if db_server is not None:
                await asyncio.to_thread(db_server.stop)
