"""The platform-knob studies build, run and prove their mechanism (exact counters only).

For each study: the first quick parameter point, the baseline and the default arm built
by the study's own ``setup``/``make_arm``, one op each, then the runner's counters
(``bench.runner._counters``: DB commands under ``count_commands()`` plus the arm's own).
No timing is asserted; every arm is closed (apps' lifespans exited, temp dirs removed).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.runner import StudyContext, _counters
from bench.studies import all_studies
from platform_core.db.client import close_client, create_client

Counters = dict[str, float]


def _routes(base: Counters, best: Counters) -> None:
    # 20 reloads: every inclusion of the catalog stays under append, one route set under replace
    assert base["catalog_routes"] == 21 * best["catalog_routes"]
    assert base["app_routes"] > best["app_routes"] + 20 * best["catalog_routes"]


def _static(base: Counters, best: Counters) -> None:
    assert base["requests_per_repeat_view"] == base["not_modified_per_repeat_view"] == 12
    assert best["requests_per_repeat_view"] == 0
    assert base["body_bytes_per_repeat_view"] == best["body_bytes_per_repeat_view"] == 0
    assert base["first_view_requests"] == best["first_view_requests"] == 12


def _offloaded(job: str) -> Callable[[Counters, Counters], None]:
    def check(base: Counters, best: Counters) -> None:
        key = f"platform_calls_offloaded_per_{job}"
        assert base[key] == 0
        assert best[key] >= 1

    return check


def _cleanup(base: Counters, best: Counters) -> None:
    _offloaded("cleanup")(base, best)
    assert base["files_deleted"] == best["files_deleted"] == 500


def _dir_scan(base: Counters, best: Counters) -> None:
    assert base["scans_per_view"] == 1.0
    assert best["scans_per_view"] == pytest.approx(0.1)
    assert base["scandir_calls_per_view"] == base["directories"] > 1


def _templates(base: Counters, best: Counters) -> None:
    assert base["cache_files"] == 0
    assert best["cache_files"] >= best["templates_rendered"] > 0


def _seed(base: Counters, best: Counters) -> None:
    assert base["db_commands_per_op"] == 10  # one find_one per folder
    assert best["db_commands_per_op"] == 1  # one $in query
    assert base["first_seeding_db_commands"] == 20 and best["first_seeding_db_commands"] == 2


def _requirements(base: Counters, best: Counters) -> None:
    assert base["computed_at_import"] == 1 and best["computed_at_import"] == 0
    assert base["packages"] == best["packages"] > 0


EXPECTATIONS: dict[str, Callable[[Counters, Counters], None]] = {
    "routes": _routes,
    "static_cache": _static,
    "export_build": _offloaded("export"),
    "export_cleanup": _cleanup,
    "dir_scan": _dir_scan,
    "template_cache": _templates,
    "password_hashing": _offloaded("login"),
    "seed_lookup": _seed,
    "requirements_parse": _requirements,
}


async def _arm_counters(study: Any, ctx: StudyContext, variant: str) -> Counters:
    params = study.grid(quick=True)[0]
    arm = await study.make_arm(ctx, params, variant)
    try:
        await arm.op()
        return await _counters(study, arm)
    finally:
        if arm.close is not None:
            await arm.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
async def test_study_proves_its_mechanism(name: str, mongodb_uri: str, tmp_path: Path) -> None:
    study = all_studies()[name]
    client = create_client(mongodb_uri, serverSelectionTimeoutMS=5_000)
    ctx = StudyContext(uri=mongodb_uri, direct_uri=mongodb_uri,
                       db_name=f"t_{name[:20]}_{uuid.uuid4().hex[:6]}", client=client,
                       rtt_ms=0.0, quick=True, scratch=tmp_path)  # fmt: skip
    try:
        if study.setup is not None:
            await study.setup(ctx, study.grid(quick=True)[0])
        base = await _arm_counters(study, ctx, study.baseline_variant)
        best = await _arm_counters(study, ctx, study.default_variant)
        EXPECTATIONS[name](base, best)
    finally:
        await ctx.close_extra_clients()
        await client.drop_database(ctx.db_name)
        await close_client(client)
    names = await asyncio.to_thread(os.listdir, tmp_path)
    leftovers = [n for n in names if n != "pycache"
                 and not n.startswith(("export_build_", "seed_lookup_"))]  # fmt: skip
    assert leftovers == [], f"arms left files behind: {leftovers}"
