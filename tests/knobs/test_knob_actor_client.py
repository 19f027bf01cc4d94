"""Knob ``actor_client`` (report 4.2): actor databases on a new client each, or one shared.

The in-process actors of the sample experiments (analytics, catalog, click_tracker) get
their scoped databases from ``app.state.actor_clients``. Exact counter: clients created,
one per actor database with ``per_call``, one in all with ``shared``. The actors answer
the same (they read data written through the web path), and shutdown closes every client.
"""

from __future__ import annotations

import pytest

from platform_core.db.client import driver_of
from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import client_for


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("actor_client"))
async def test_actor_clients_created(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"actor_client": variant}) as app:
        clients = app.state.actor_clients
        actors = app.state.experiment_service.actors.stats()["actors"]
        async with client_for(app) as http:
            for page in ("home", "home", "docs"):
                r = await http.post("/experiments/click_tracker/api/click", json={"page": page})
                assert r.status_code == 201
            count = (await http.get("/experiments/click_tracker/api/count")).json()
            stats = (await http.get("/experiments/catalog/api/stats")).json()
        created = clients.clients_created
        assert driver_of(clients.client()) == app.state.settings.driver
    assert actors == ["analytics", "catalog", "click_tracker"]
    assert count == {"clicks": 3} and stats == {"categories": []}
    assert created == (len(actors) if variant == "per_call" else 1)
    assert clients.stats()["open"] == 0  # closed on shutdown
