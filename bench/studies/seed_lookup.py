"""Startup seeding of experiment configs (extra finding, spec 6.1): per folder vs one $in.

An experiments folder with F sub-folders (a minimal valid ``manifest.json`` each) is
seeded as the platform does at every start: ``discover`` (in a worker thread; the same in
both variants, done once per arm and reported as a counter), then ``seed_configs``. One op
is the seeding of a restart: the configs already exist, so it only looks them up
(``per_folder``: one ``find_one`` per folder; ``in_query``: one ``$in`` query per 100
slugs). Counters: DB commands per restart (exact, from command monitoring), per first
seeding into an empty database (lookups plus inserts: one ``insert_one`` per folder vs one
``insert_many``), and the discovery time.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench.study import Arm, Params, Study
from platform_core.experiments.discovery import CONFIG_COLLECTION, discover, seed_configs
from platform_core.observability import count_commands


def make_folders(root: Path, folders: int) -> Path:
    """``folders`` experiment folders with a minimal valid manifest each."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(folders):
        slug = f"exp{i:04d}"
        folder = root / slug
        folder.mkdir(exist_ok=True)
        manifest = {"slug": slug, "name": f"Experiment {i}", "status": "active"}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return root


def _root(ctx: Any, params: Params) -> Path:
    return ctx.scratch / f"seed_lookup_{params['folders']}"


async def _setup(ctx: Any, params: Params) -> None:
    root = await asyncio.to_thread(make_folders, _root(ctx, params), int(params["folders"]))
    coll = ctx.db[CONFIG_COLLECTION]
    await coll.drop()
    await coll.create_index("slug", unique=True)  # as the platform's own indexes
    await seed_configs(ctx.db, await asyncio.to_thread(discover, root), strategy="in_query")


async def _first_seeding(ctx: Any, root: Path, variant: str) -> float:
    db = ctx.client[f"{ctx.db_name}_first"]
    try:
        await db[CONFIG_COLLECTION].create_index("slug", unique=True)
        discovered = await asyncio.to_thread(discover, root)
        with count_commands() as counted:
            await seed_configs(db, discovered, strategy=variant)
        return float(counted.total)
    finally:
        await ctx.client.drop_database(db.name)


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    root = _root(ctx, params)
    folders = int(params["folders"])

    started = time.perf_counter()
    discovered = await asyncio.to_thread(discover, root)
    discover_ms = (time.perf_counter() - started) * 1e3

    async def op() -> None:
        report = await seed_configs(ctx.db, discovered, strategy=variant)
        if len(report.existing) != folders:
            raise AssertionError(f"{len(report.existing)} of {folders} configs found")

    async def counters() -> dict[str, float]:
        return {"first_seeding_db_commands": await _first_seeding(ctx, root, variant),
                "discover_ms": discover_ms}  # fmt: skip

    return Arm(op=op, counters=counters)  # the folders stay in ctx.scratch (the run's temp)


STUDY = Study(
    name="seed_lookup",
    knob="seed_lookup",
    description="Restart seeding of F experiment folders whose configs exist: find_one each "
    "vs $in.",
    make_arm=_make_arm,
    setup=_setup,
    params={"folders": (10, 100)},
    quick_params={"folders": (10,)},
    ops_per_block=3,
    quick_ops_per_block=3,
    metric="seconds per startup seeding",
)
