"""Deleting an experiment (``DELETE /admin/api/delete-experiment/{slug}`` and the developer
route): routes and actor, exact collections, folder, config and export logs.

Fixes over the reference (spec 8.4, 8.5): the slug is validated before anything else; the
folder is resolved inside the experiments root; collections are chosen by the exact rule
of :mod:`platform_core.export.collections` (never ``startswith(slug)``); caches are
invalidated together. The caller must send ``{"confirmation": "<phrase>"}`` with the
exact phrase of :func:`confirmation_phrase`.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from platform_core.db.slugs import validate_slug
from platform_core.experiments.config_cache import CONFIG_COLLECTION
from platform_core.export.collections import drop_owned, owned_collections


class DeleteError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def confirmation_phrase(slug: str) -> str:
    return f"sudo rm -rf experiments/{validate_slug(slug)}"


async def delete_experiment(service: Any, slug: str, confirmation: str) -> dict[str, Any]:
    validate_slug(slug)
    if confirmation != confirmation_phrase(slug):
        raise DeleteError(400, f"Confirmation must be exactly {confirmation_phrase(slug)!r}")
    db = service.db
    config = await db[CONFIG_COLLECTION].find_one({"slug": slug})
    folder = service.folder(slug)
    if config is None and not folder.exists():
        raise DeleteError(404, f"Experiment {slug!r} not found")
    report: dict[str, Any] = {"slug": slug}
    known = service.known_slugs()
    async for doc in db[CONFIG_COLLECTION].find({}, {"slug": 1}):
        if isinstance(doc.get("slug"), str):
            known.add(doc["slug"])
    report["unregistered"] = await service.unregister(slug)
    names = await owned_collections(db, slug, known_slugs=known - {slug}, config=config)
    report["collections"] = await drop_owned(db, slug, names)
    report["exports"] = await service.exports.delete_for_slug(slug)
    if config is not None:
        await db[CONFIG_COLLECTION].delete_one({"_id": config["_id"]})
    report["config_deleted"] = config is not None
    if folder.exists():
        if folder.is_symlink():
            folder.unlink()
        else:
            await asyncio.to_thread(shutil.rmtree, folder)
    report["folder_deleted"] = not folder.exists()
    service.invalidate(slug)
    service.forget_indexes(slug)
    report["status"] = "ok"
    return report
