"""Knob ``config_cache`` (report 1.2/2.1) through the running app.

Exact ``experiments_config`` reads per catalog API request (the access guard and the
handler each ask for the config): ``none`` 2, ``request`` 1, TTL variants 1 cold and 0
warm. A save through the admin API invalidates, so the next request sees the new config
in every variant; 20 concurrent cold requests share one read only with single-flight.
The cache's unit behaviour is in ``tests/platform/test_experiments_config_cache.py``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from platform_core.observability import count_commands
from platform_core.settings import Settings
from tests.knobs.conftest import admin_client, running, variants_of
from tests.platform.conftest import client_for

CONFIGS = "experiments_config"
URL = "/experiments/catalog/api/products"
# (cold request, warm request) reads of experiments_config
READS = {"none": (2, 2), "request": (1, 1), "request_ttl": (1, 0),
         "request_ttl_singleflight": (1, 0)}  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("config_cache"))
async def test_config_reads_per_request_and_invalidation(
    knob_settings: Settings, variant: str
) -> None:
    async with running(knob_settings, {"config_cache": variant}) as app:
        service = app.state.experiment_service
        assert service.config_cache.strategy == variant
        service.config_cache.invalidate("catalog")  # start cold whatever startup read
        async with client_for(app) as http, admin_client(app) as admin:
            with count_commands() as cold:
                first = await http.get(URL)
            with count_commands() as warm:
                second = await http.get(URL)
            assert first.status_code == second.status_code == 200
            assert first.json() == second.json()
            assert first.json()["page_size"] == 20 and first.json()["total"] == 0
            assert (cold.on(CONFIGS, "find"), warm.on(CONFIGS, "find")) == READS[variant]
            # a save through the admin API: the very next request sees the new page size
            manifest = json.loads(
                (knob_settings.experiments_dir / "catalog" / "manifest.json").read_text()
            )
            manifest["catalog_settings"]["page_size"] = 7
            saved = await admin.post("/admin/api/save-manifest/catalog",
                                     json={"content": json.dumps(manifest)})  # fmt: skip
            assert saved.status_code == 200, saved.text
            assert (await http.get(URL)).json()["page_size"] == 7
            # a stampede of cold requests
            service.config_cache.invalidate("catalog")
            with count_commands() as stampede:
                answers = await asyncio.gather(*(http.get(URL) for _ in range(20)))
            assert {r.json()["page_size"] for r in answers} == {7}
    reads = stampede.on(CONFIGS, "find")
    if variant == "none":
        assert reads == 40
    elif variant == "request":
        assert reads == 20
    elif variant == "request_ttl_singleflight":
        assert reads == 1
    else:
        assert reads > 1  # concurrent misses each read (how many depends on interleaving)
