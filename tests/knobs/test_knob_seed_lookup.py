"""Knob ``seed_lookup`` (extra finding to spec 6.1): seeding configs from folders.

Exact counters: at startup, ``per_folder`` reads ``experiments_config`` once per folder and
inserts one document per new folder; ``in_query`` reads once (one ``$in``) and inserts
once. Through the app's strategy, 120 folders cost 120 reads vs 2 (``$in`` chunks of 100).
Both store the same configs.
"""

from __future__ import annotations

import math

import pytest

from platform_core.experiments.discovery import DiscoveredExperiment, read_manifest, seed_configs
from platform_core.observability import count_commands
from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of

CONFIGS = "experiments_config"
FOLDERS = ["analytics", "catalog", "click_tracker", "probe"]
MANY = 120


async def _stored(db) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    docs = await db[CONFIGS].find({}, {"_id": 0, "slug": 1, "status": 1}).to_list()
    return sorted((d["slug"], d["status"]) for d in docs)


@pytest.mark.asyncio
async def test_startup_and_bulk_seeding(knob_settings: Settings) -> None:
    seen = {}
    for variant in variants_of("seed_lookup"):
        with count_commands() as startup:
            async with running(knob_settings, {"seed_lookup": variant}) as app:
                startup_finds = startup.on(CONFIGS, "find")
                startup_inserts = startup.on(CONFIGS, "insert")
                service = app.state.experiment_service
                report = service.seed_report.as_dict()
                stored = await _stored(app.state.db)
                manifest = read_manifest(service.folder("probe"))
                many = [DiscoveredExperiment(slug=f"bulk_{i:03d}", folder=service.folder("probe"),
                                             manifest=manifest) for i in range(MANY)]  # fmt: skip
                with count_commands() as bulk:
                    bulk_report = await seed_configs(
                        app.state.db, many, strategy=service.strategies.seed_lookup
                    )
                stored_after = await _stored(app.state.db)
        seen[variant] = {"report": report, "stored": stored, "finds": startup_finds,
                         "inserts": startup_inserts, "bulk": bulk, "bulk_report": bulk_report,
                         "stored_after": stored_after}  # fmt: skip
    per_folder, in_query = seen["per_folder"], seen["in_query"]
    # the same configs stored
    assert per_folder["stored"] == in_query["stored"] == [(s, "active") for s in FOLDERS]
    assert per_folder["stored_after"] == in_query["stored_after"]
    assert len(in_query["stored_after"]) == len(FOLDERS) + MANY
    # startup: one read and one insert per folder vs one of each
    assert per_folder["report"]["db_reads"] == per_folder["report"]["db_writes"] == len(FOLDERS)
    assert in_query["report"]["db_reads"] == in_query["report"]["db_writes"] == 1
    assert per_folder["finds"] - in_query["finds"] == len(FOLDERS) - 1
    assert (per_folder["inserts"], in_query["inserts"]) == (len(FOLDERS), 1)
    # bulk: one find per folder vs one $in per 100 folders
    assert per_folder["bulk"].on(CONFIGS, "find") == MANY
    assert per_folder["bulk"].on(CONFIGS, "insert") == MANY
    assert in_query["bulk"].on(CONFIGS, "find") == math.ceil(MANY / 100)
    assert in_query["bulk"].on(CONFIGS, "insert") == 1
    assert per_folder["bulk_report"].inserted == in_query["bulk_report"].inserted
