"""Knob ``driver`` (extra, spec 2.3): motor or PyMongo's native async client.

With ``MONGODB_DRIVER`` unset, the knob picks the driver of the app's client and of the
actor clients. The same small request set (health, login, experiment writes and reads,
an actor call, admin API) answers the same with both drivers.
"""

from __future__ import annotations

from typing import Any

import pytest

from platform_core.db.client import driver_of
from platform_core.settings import Settings
from tests.knobs.conftest import admin_client, running, variants_of
from tests.platform.conftest import client_for


async def _request_set(app: Any) -> list[tuple[str, int, Any]]:
    seen: list[tuple[str, int, Any]] = []
    async with client_for(app) as http, admin_client(app) as admin:
        health = await http.get("/healthz")
        body = health.json()
        knobs = {k: v for k, v in body["knobs"].items() if k != "driver"}
        seen.append(("healthz", health.status_code, (body["status"], body["db"], knobs)))
        for n in (2, 1):
            r = await http.post("/experiments/probe/api/items", params={"n": n})
            seen.append(("add", r.status_code, r.json()))
        for url in ("/experiments/probe/api/items", "/experiments/probe/api/facts",
                    "/experiments/catalog/api/products", "/experiments/catalog/api/categories"):  # fmt: skip
            r = await http.get(url)
            seen.append((url, r.status_code, r.json()))
        r = await http.post("/experiments/click_tracker/api/click", json={"page": "home"})
        seen.append(("click", r.status_code, r.json()["status"]))
        r = await http.get("/experiments/click_tracker/api/count")
        seen.append(("count", r.status_code, r.json()))
        r = await admin.get("/admin/api/users")
        seen.append(("users", r.status_code, sorted(u["email"] for u in r.json()["users"])))
        r = await http.get("/experiments/nope/")
        seen.append(("404", r.status_code, None))
    return seen


@pytest.mark.asyncio
async def test_both_drivers_answer_the_same(knob_settings: Settings, db_name: str) -> None:
    answers = {}
    for variant in variants_of("driver"):
        async with running(knob_settings, {"driver": variant}, mongodb_driver=None,
                           mongodb_db=f"{db_name}_{variant}") as app:  # fmt: skip
            assert driver_of(app.state.client) == variant
            answers[variant] = await _request_set(app)
            assert driver_of(app.state.actor_clients.client()) == variant
    first, *others = answers.values()
    assert all(other == first for other in others)
    assert [status for _, status, _ in first] == [200, 201, 201, 200, 200, 200, 200, 201, 200,
                                                  200, 404]  # fmt: skip
