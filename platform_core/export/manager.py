"""Exports: build, log (``export_logs``), serve, invalidate and clean up (spec 2.16, 6.16).

Files live in ``DATA_DIR/exports`` under generated names
``<slug>-<UTC timestamp>-<random hex>.zip``; a log entry stores the *basename* only, so
serving never joins a user-supplied path, and the download route (admin only, by log id)
checks the log first (410 if invalidated, 404 if expired or gone). Unlike the reference,
no export is ever downloadable anonymously, and cleanup marks the log entries of the
files it deletes (``file_deleted``).

``export_cleanup`` knob (report 8.1): ``"on_loop"`` (baseline) runs the glob/stat/unlink
sweep synchronously on the event loop; ``"thread"`` (default) runs the same sweep in a
worker thread. The sweep runs periodically (``EXPORT_CLEANUP_INTERVAL_SECONDS``; first
sweep after ``min(300 s, interval)``), never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from bson import ObjectId
from bson.errors import InvalidId

from platform_core.db.slugs import validate_slug
from platform_core.export.builder import (
    EXPORT_BUILDS,
    BuiltZip,
    build_in_memory,
    build_to_file,
    readme_text,
)
from platform_core.export.collections import dump_collections, owned_collections, to_json

log = logging.getLogger(__name__)

ExportCleanup = Literal["on_loop", "thread"]
EXPORT_CLEANUPS: tuple[str, ...] = get_args(ExportCleanup)
EXPORT_LOGS = "export_logs"
EXPORT_NAME_RE = re.compile(r"^[a-z0-9_]+-\d{8}T\d{6}Z-[0-9a-f]{8}\.zip$")


class ExportError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class ExportResult:
    export_id: str
    filename: str
    path: Path
    size: int
    sha256: str
    collections: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "export_id": self.export_id,
            "filename": self.filename,
            "file_size": self.size,
            "checksum": self.sha256,
            "collections": self.collections,
            "download_url": f"/admin/api/exports/{self.export_id}/download",
        }


def sweep_exports(directory: Path, max_age_seconds: float, now: float | None = None) -> list[str]:
    """Delete ``*.zip`` (and stale ``.part``) files older than ``max_age_seconds``."""
    now = time.time() if now is None else now
    removed: list[str] = []
    if not directory.is_dir():
        return removed
    for path in list(directory.glob("*.zip")) + list(directory.glob(".*.part")):
        try:
            if now - path.stat().st_mtime > max_age_seconds:
                path.unlink()
                removed.append(path.name)
        except OSError:
            continue
    return removed


class ExportManager:
    def __init__(
        self,
        *,
        db_getter: Any,
        exports_dir: Path,
        build_strategy: str = "thread",
        cleanup_strategy: str = "thread",
        retention_hours: float = 24.0,
        cleanup_interval_seconds: float = 6 * 3600.0,
        dump_limit: int = 10_000,
        task_manager: Any = None,
    ) -> None:
        if build_strategy not in EXPORT_BUILDS:
            raise ValueError(f"unknown export build strategy {build_strategy!r}: {EXPORT_BUILDS}")
        if cleanup_strategy not in EXPORT_CLEANUPS:
            raise ValueError(f"unknown export cleanup {cleanup_strategy!r}: {EXPORT_CLEANUPS}")
        self._db_getter = db_getter
        self.exports_dir = exports_dir
        self.build_strategy = build_strategy
        self.cleanup_strategy = cleanup_strategy
        self.retention_seconds = retention_hours * 3600.0
        self.cleanup_interval_seconds = cleanup_interval_seconds
        self.dump_limit = dump_limit
        # The app's TaskManager (knob task_metrics): the cleanup loop runs through it.
        self._task_manager = task_manager
        self._cleanup_task: asyncio.Task[None] | None = None
        self.sweeps = 0

    @property
    def db(self) -> Any:
        return self._db_getter()

    # -- building ------------------------------------------------------------------------
    def new_filename(self, slug: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{validate_slug(slug)}-{stamp}-{secrets.token_hex(4)}.zip"

    async def export(
        self,
        slug: str,
        folder: Path,
        config: dict[str, Any],
        *,
        known_slugs: set[str],
        user_email: str | None,
    ) -> ExportResult:
        validate_slug(slug)
        db = self.db
        names = await owned_collections(db, slug, known_slugs=known_slugs, config=config)
        dumps = await dump_collections(db, slug, names, limit=self.dump_limit)
        counts = {name: len(docs) for name, docs in dumps.items()}
        config_doc = {k: v for k, v in config.items() if k != "_id"}
        filename = self.new_filename(slug)
        target = self.exports_dir / filename
        if self.build_strategy == "on_loop":
            built = self._build_on_loop(folder, slug, config_doc, dumps, counts, target)
        else:
            built = await asyncio.to_thread(
                self._build_in_thread, folder, slug, config_doc, dumps, counts, target
            )
        doc = {
            "slug_id": slug,
            "export_type": "package",
            "user_email": user_email,
            "local_file_path": filename,
            "file_name": filename,
            "file_size": built.size,
            "checksum": built.sha256,
            "collections": counts,
            "invalidated": False,
            "file_deleted": False,
            "created_at": datetime.now(UTC),
        }
        result = await db[EXPORT_LOGS].insert_one(doc)
        return ExportResult(str(result.inserted_id), filename, target, built.size, built.sha256,
                            counts)  # fmt: skip

    def _texts(self, slug: str, config: dict[str, Any], dumps: dict[str, Any],
               counts: dict[str, int]) -> tuple[str, str, str]:  # fmt: skip
        return to_json(config), to_json(dumps), readme_text(slug, config, counts)

    def _build_on_loop(self, folder: Path, slug: str, config: dict[str, Any],
                       dumps: dict[str, Any], counts: dict[str, int], target: Path) -> BuiltZip:  # fmt: skip
        # Deliberately blocking (the baseline): JSON, DEFLATE and the write on the loop.
        built = build_in_memory(folder, slug, *self._texts(slug, config, dumps, counts))
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        assert built.data is not None
        target.write_bytes(built.data)
        return built

    def _build_in_thread(self, folder: Path, slug: str, config: dict[str, Any],
                         dumps: dict[str, Any], counts: dict[str, int], target: Path) -> BuiltZip:  # fmt: skip
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        return build_to_file(folder, slug, *self._texts(slug, config, dumps, counts), target)

    # -- logs, download, invalidation ----------------------------------------------------------
    async def find_log(self, export_id: str) -> dict[str, Any]:
        try:
            oid = ObjectId(export_id)
        except (InvalidId, TypeError):
            raise ExportError(400, "Invalid export id") from None
        doc = await self.db[EXPORT_LOGS].find_one({"_id": oid})
        if doc is None:
            raise ExportError(404, "Export not found")
        return doc

    async def file_for_download(self, export_id: str) -> tuple[Path, dict[str, Any]]:
        doc = await self.find_log(export_id)
        if doc.get("invalidated"):
            raise ExportError(410, "This export was invalidated")
        name = str(doc.get("file_name") or doc.get("local_file_path") or "")
        if not EXPORT_NAME_RE.fullmatch(name):
            raise ExportError(404, "Export file not available")
        path = self.exports_dir / name
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            raise ExportError(404, "Export file not available (expired or removed)") from None
        if age > self.retention_seconds:
            path.unlink(missing_ok=True)
            await self._mark_deleted([name])
            raise ExportError(404, "Export expired")
        return path, doc

    async def invalidate(self, export_id: str, *, by: str, delete_file: bool) -> dict[str, Any]:
        doc = await self.find_log(export_id)
        update: dict[str, Any] = {
            "invalidated": True,
            "invalidated_at": datetime.now(UTC),
            "invalidated_by": by,
        }
        name = str(doc.get("file_name") or "")
        if delete_file and EXPORT_NAME_RE.fullmatch(name):
            (self.exports_dir / name).unlink(missing_ok=True)
            update["file_deleted"] = True
        await self.db[EXPORT_LOGS].update_one({"_id": doc["_id"]}, {"$set": update})
        return {
            "status": "ok",
            "export_id": export_id,
            "file_deleted": bool(update.get("file_deleted")),
        }

    async def list_logs(self, slug: str | None, limit: int = 1000) -> list[dict[str, Any]]:
        query = {"slug_id": validate_slug(slug)} if slug else {}
        cursor = self.db[EXPORT_LOGS].find(query).sort("created_at", -1).limit(limit)
        out = []
        async for doc in cursor:
            doc["_id"] = str(doc["_id"])
            out.append(json.loads(to_json(doc)))
        return out

    async def delete_for_slug(self, slug: str) -> dict[str, int]:
        validate_slug(slug)
        removed = 0
        async for doc in self.db[EXPORT_LOGS].find({"slug_id": slug}, {"file_name": 1}):
            name = str(doc.get("file_name") or "")
            if EXPORT_NAME_RE.fullmatch(name):
                path = self.exports_dir / name
                if path.exists():
                    path.unlink(missing_ok=True)
                    removed += 1
        result = await self.db[EXPORT_LOGS].delete_many({"slug_id": slug})
        return {"logs_deleted": result.deleted_count, "files_deleted": removed}

    # -- cleanup -------------------------------------------------------------------------------
    async def cleanup(self) -> list[str]:
        """One sweep with the configured strategy; marks the logs of removed files."""
        self.sweeps += 1
        if self.cleanup_strategy == "on_loop":
            removed = sweep_exports(self.exports_dir, self.retention_seconds)
        else:
            removed = await asyncio.to_thread(
                sweep_exports, self.exports_dir, self.retention_seconds
            )
        if removed:
            await self._mark_deleted(removed)
            log.info("export cleanup removed %d file(s)", len(removed))
        return removed

    async def _mark_deleted(self, names: list[str]) -> None:
        # Chunks of 100 names: an $in costs keys x documents on SecantusDB (STACK_NOTES),
        # and a sweep can remove thousands of files.
        for start in range(0, len(names), 100):
            await self.db[EXPORT_LOGS].update_many(
                {"file_name": {"$in": names[start : start + 100]}},
                {"$set": {"file_deleted": True}},
            )

    def start_cleanup_loop(self) -> None:
        if self._cleanup_task is None or self._cleanup_task.done():
            if self._task_manager is not None:
                self._cleanup_task = self._task_manager.spawn(self._loop(), "export-cleanup")
            else:
                self._cleanup_task = asyncio.create_task(self._loop(), name="export-cleanup")

    async def _loop(self) -> None:
        delay = min(300.0, self.cleanup_interval_seconds)
        while True:
            await asyncio.sleep(delay)
            try:
                await self.cleanup()
            except Exception:
                log.exception("export cleanup failed")
            delay = self.cleanup_interval_seconds

    async def stop(self) -> None:
        task, self._cleanup_task = self._cleanup_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
