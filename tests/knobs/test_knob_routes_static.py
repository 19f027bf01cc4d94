"""Knobs ``routes`` (report 7.1) and ``static_cache`` (report 7.2) through settings.

routes: after N reloads through the admin API the app's route count grows by the
experiment's routes per reload under ``append`` and stays constant under ``replace``; the
experiment answers the same before, and a disabled experiment answers 404 in both.
static_cache: a conditional GET with the ``ETag`` answers 304 in both; ``cached`` sends
``Cache-Control: public, max-age=...``, ``plain`` no ``Cache-Control`` at all; same bytes.
Registration details are in ``tests/platform/test_registry.py``.
"""

from __future__ import annotations

import pytest

from platform_core.settings import Settings
from tests.knobs.conftest import admin_client, running, variants_of
from tests.platform.conftest import client_for

RELOADS = 5


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("routes"))
async def test_route_count_after_reloads(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"routes": variant}) as app:
        service = app.state.experiment_service
        assert service.routes_strategy == variant
        async with admin_client(app) as admin, client_for(app) as http:
            before = service.route_count()
            per_reload = len(service.registry["probe"].bp.routes)
            first = (await http.get("/experiments/probe/api/facts")).json()
            for _ in range(RELOADS):
                r = await admin.post("/admin/api/reload-experiment/probe")
                assert r.status_code == 200 and r.json()["registered"] is True
            after = service.route_count()
            assert (await http.get("/experiments/probe/api/facts")).json() == first
            await app.state.db.experiments_config.update_one(
                {"slug": "probe"}, {"$set": {"status": "disabled"}}
            )
            await admin.post("/admin/api/reload-experiment/probe")
            disabled = await http.get("/experiments/probe/api/facts")
    assert per_reload == 5
    assert disabled.status_code == 404
    if variant == "append":
        assert after == before + RELOADS * per_reload
    else:
        assert after == before


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("static_cache"))
async def test_static_headers_and_conditional_get(knob_settings: Settings, variant: str) -> None:
    url = "/experiments/probe/static/app.js"
    async with running(knob_settings, {"static_cache": variant}) as app:
        async with client_for(app) as http:
            first = await http.get(url)
            again = await http.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert first.status_code == 200 and first.content == b"console.log('probe');\n"
    assert again.status_code == 304 and again.content == b""
    for response in (first, again):
        cache_control = response.headers.get("cache-control")
        if variant == "cached":
            assert cache_control == "public, max-age=3600"
        else:
            assert cache_control is None
