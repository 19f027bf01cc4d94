"""Discovery and config seeding (PLATFORM_SPEC 2.13; knob seed_lookup, extra finding 6.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from platform_core.experiments.discovery import discover, seed_configs
from platform_core.experiments.testing import copy_samples
from platform_core.observability import count_commands


def make_root(tmp_path: Path, extra: int = 3) -> Path:
    root = copy_samples(tmp_path / "experiments")
    for i in range(extra):
        folder = root / f"extra_{i}"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"name": f"Extra {i}"}))
    for bad in ("_scaffold", ".hidden", "Bad-Name", "a b", "ｃatalog"):
        folder = root / bad
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"name": bad}))
    (root / "no_manifest").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "manifest.json").write_text('{"name": "x", "auth_policy": {"bogus": 1}}')
    (root / "stray_file.txt").write_text("not a folder")
    return root


def test_discover_filters_and_validates(tmp_path: Path) -> None:
    found = {d.slug: d for d in discover(make_root(tmp_path))}
    assert set(found) == {"analytics", "catalog", "click_tracker", "extra_0", "extra_1",
                          "extra_2", "broken"}  # fmt: skip
    assert found["broken"].manifest is None and "auth_policy.bogus" in (found["broken"].error or "")
    assert found["catalog"].manifest is not None


def test_discover_missing_root(tmp_path: Path) -> None:
    assert discover(tmp_path / "nope") == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("strategy", "finds", "inserts"), [("per_folder", 6, 6), ("in_query", 1, 1)]
)
async def test_seed_lookup_command_counts(db: Any, tmp_path: Path, strategy: str, finds: int,
                                          inserts: int) -> None:  # fmt: skip
    found = discover(make_root(tmp_path))
    with count_commands() as counted:
        report = await seed_configs(db, found, strategy=strategy)
    assert counted.by_name["find"] == finds
    assert counted.by_name["insert"] == inserts
    assert sorted(report.inserted) == ["analytics", "catalog", "click_tracker", "extra_0",
                                       "extra_1", "extra_2"]  # fmt: skip
    assert "broken" in report.invalid
    doc = await db.experiments_config.find_one({"slug": "extra_0"})
    assert doc["status"] == "active" and "owner_email" not in doc
    # Second run: nothing inserted, one lookup per strategy again.
    with count_commands() as counted:
        again = await seed_configs(db, found, strategy=strategy)
    assert again.inserted == [] and counted.by_name["find"] == finds
    assert "insert" not in counted.by_name


@pytest.mark.asyncio
async def test_seeding_never_reactivates_a_deactivated_experiment(db: Any, tmp_path: Path) -> None:
    found = discover(make_root(tmp_path, extra=0))
    await seed_configs(db, found)
    await db.experiments_config.update_one({"slug": "catalog"}, {"$set": {"status": "inactive"}})
    await db.experiments_config.update_one({"slug": "analytics"}, {"$unset": {"status": ""}})
    for strategy in ("per_folder", "in_query"):
        await seed_configs(db, found, strategy=strategy)
    assert (await db.experiments_config.find_one({"slug": "catalog"}))["status"] == "inactive"
    # A legacy config without any status gets one filled in (never overridden otherwise).
    assert (await db.experiments_config.find_one({"slug": "analytics"}))["status"] == "active"


@pytest.mark.asyncio
async def test_seed_rejects_unknown_strategy(db: Any) -> None:
    with pytest.raises(ValueError, match="unknown seed lookup"):
        await seed_configs(db, [], strategy="bulk")
