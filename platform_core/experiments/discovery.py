"""Find experiment folders and seed their configs into ``experiments_config`` (spec 2.13).

Two fixes over the reference, and one knob:

* Folder names are validated as slugs *before* anything else is done with them; folders
  starting with ``_`` or ``.`` are ignored, as are symlinked folders that point outside the
  experiments root.
* The existing-config lookup reads ``status`` too. The reference projected only
  ``_id, slug``, so the DB status always looked like "not active" and every startup forced
  ``active`` again, re-enabling experiments an admin had switched off. Here an existing
  config is never re-activated: seeding only inserts missing configs (and fills in a
  missing ``status``).
* ``seed_lookup`` knob (extra finding for report 6.1): ``"per_folder"`` (baseline) does one
  ``find_one`` and one ``insert_one`` per folder; ``"in_query"`` (default) reads all folder
  slugs with one ``$in`` query (chunks of 100 keys) and inserts the missing ones with one
  ``insert_many``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from pymongo.errors import BulkWriteError, DuplicateKeyError

from platform_core.db.slugs import validate_slug
from platform_core.experiments.manifest import (
    ExperimentManifest,
    ManifestError,
    parse_manifest_text,
)
from platform_core.settings import Settings

log = logging.getLogger(__name__)

SeedLookup = Literal["per_folder", "in_query"]
SEED_LOOKUPS: tuple[str, ...] = get_args(SeedLookup)
CONFIG_COLLECTION = "experiments_config"
PACKAGE_SAMPLES = Path(__file__).resolve().parent.parent / "sample_experiments"
_IN_CHUNK = 100


def experiments_root(settings: Settings) -> Path:
    """The experiments folder: ``EXPERIMENTS_DIR``, else a working copy of the samples.

    Uploads and deletes write into this folder, so the default is a copy of the samples
    shipped in the package, made once under ``DATA_DIR/experiments``: the installed
    package itself is never modified.
    """
    if settings.experiments_dir is not None:
        return Path(settings.experiments_dir).resolve()
    root = (Path(settings.data_dir) / "experiments").resolve()
    if not root.exists():
        staging = root.with_name(f".{root.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(PACKAGE_SAMPLES, staging, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            staging.rename(root)  # atomic: concurrent workers never see half a copy
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not root.exists():
                raise
    return root


@dataclass(slots=True)
class DiscoveredExperiment:
    slug: str
    folder: Path
    manifest: ExperimentManifest | None = None
    error: str | None = None


@dataclass(slots=True)
class SeedReport:
    strategy: str
    folders: int = 0
    inserted: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    db_reads: int = 0
    db_writes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "folders": self.folders,
            "inserted": self.inserted,
            "existing": self.existing,
            "invalid": self.invalid,
            "db_reads": self.db_reads,
            "db_writes": self.db_writes,
        }


def folder_for(root: Path, slug: str) -> Path:
    """``root/<slug>`` after validating the slug; never leaves ``root``."""
    validate_slug(slug)
    folder = (root / slug).resolve()
    if folder.parent != root.resolve():
        raise ValueError(f"experiment folder of {slug!r} resolves outside the experiments root")
    return folder


def is_candidate(entry: Path) -> bool:
    name = entry.name
    return not name.startswith(("_", ".")) and entry.is_dir()


def read_manifest(folder: Path) -> ExperimentManifest:
    path = folder / "manifest.json"
    if not path.is_file():
        raise ManifestError([{"field": "manifest", "message": "manifest.json not found"}])
    return parse_manifest_text(path.read_bytes())


def discover(root: Path) -> list[DiscoveredExperiment]:
    """Scan ``root`` (synchronous; call it in a thread from async code)."""
    found: list[DiscoveredExperiment] = []
    if not root.is_dir():
        log.warning("experiments folder %s does not exist", root)
        return found
    for entry in sorted(root.iterdir()):
        if not is_candidate(entry):
            continue
        try:
            slug = validate_slug(entry.name)
            folder = folder_for(root, slug)
        except ValueError as exc:
            log.warning("ignoring experiment folder %r: %s", entry.name, exc)
            continue
        if not (folder / "manifest.json").is_file():
            continue
        item = DiscoveredExperiment(slug=slug, folder=folder)
        try:
            item.manifest = read_manifest(folder)
        except ManifestError as exc:
            item.error = str(exc)
        found.append(item)
    return found


def config_from_manifest(slug: str, manifest: ExperimentManifest) -> dict[str, Any]:
    """A new ``experiments_config`` document for a folder (status defaults to active)."""
    doc = manifest.to_config()
    doc["slug"] = slug
    doc.setdefault("status", "active")
    developer = doc.pop("developer_id", None)
    if developer and not doc.get("owner_email"):
        doc["owner_email"] = developer
    now = datetime.now(UTC)
    doc["created_at"] = now
    doc["updated_at"] = now
    doc["source"] = "folder"
    return doc


_PROJECTION = {"_id": 1, "slug": 1, "status": 1}


async def _existing_per_folder(coll: Any, slugs: list[str], report: SeedReport) -> dict[str, Any]:
    existing: dict[str, Any] = {}
    for slug in slugs:
        report.db_reads += 1
        doc = await coll.find_one({"slug": slug}, _PROJECTION)
        if doc is not None:
            existing[slug] = doc
    return existing


async def _existing_in_query(coll: Any, slugs: list[str], report: SeedReport) -> dict[str, Any]:
    existing: dict[str, Any] = {}
    for start in range(0, len(slugs), _IN_CHUNK):
        report.db_reads += 1
        async for doc in coll.find(
            {"slug": {"$in": slugs[start : start + _IN_CHUNK]}}, _PROJECTION
        ):
            existing[doc["slug"]] = doc
    return existing


async def seed_configs(
    db: Any, discovered: list[DiscoveredExperiment], *, strategy: str = "in_query"
) -> SeedReport:
    """Insert configs for folders that have none; never touch an existing config's status."""
    if strategy not in SEED_LOOKUPS:
        raise ValueError(f"unknown seed lookup strategy {strategy!r}: {SEED_LOOKUPS}")
    coll = db[CONFIG_COLLECTION]
    report = SeedReport(strategy=strategy, folders=len(discovered))
    valid = [d for d in discovered if d.manifest is not None]
    for d in discovered:
        if d.error:
            report.invalid[d.slug] = d.error
    slugs = [d.slug for d in valid]
    lookup = _existing_per_folder if strategy == "per_folder" else _existing_in_query
    existing = await lookup(coll, slugs, report)
    new_docs: list[dict[str, Any]] = []
    for d in valid:
        assert d.manifest is not None
        current = existing.get(d.slug)
        if current is None:
            new_docs.append(config_from_manifest(d.slug, d.manifest))
            continue
        report.existing.append(d.slug)
        if "status" not in current:  # legacy config: fill in, never override
            report.db_writes += 1
            await coll.update_one(
                {"_id": current["_id"], "status": {"$exists": False}},
                {"$set": {"status": d.manifest.status or "active"}},
            )
    await _insert(coll, new_docs, strategy, report)
    if report.invalid:
        for slug, error in report.invalid.items():
            log.warning("experiment folder %s not seeded: %s", slug, error)
    return report


async def _insert(coll: Any, docs: list[dict[str, Any]], strategy: str, report: SeedReport) -> None:
    if not docs:
        return
    if strategy == "per_folder":
        for doc in docs:
            report.db_writes += 1
            try:
                await coll.insert_one(doc)
                report.inserted.append(doc["slug"])
            except DuplicateKeyError:  # another worker seeded it first
                report.existing.append(doc["slug"])
        return
    report.db_writes += 1
    try:
        await coll.insert_many(docs, ordered=False)
        report.inserted.extend(d["slug"] for d in docs)
    except BulkWriteError as exc:
        failed = {docs[e["index"]]["slug"] for e in exc.details.get("writeErrors", [])}
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
        report.inserted.extend(d["slug"] for d in docs if d["slug"] not in failed)
        report.existing.extend(sorted(failed))


def manifest_json(manifest: ExperimentManifest) -> str:
    return json.dumps(manifest.to_config(), indent=2, sort_keys=True)
