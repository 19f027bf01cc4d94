"""Experiment ZIP uploads: receive, inspect, extract, configure, register (spec 2.15).

Checks, all before anything is written to the experiments folder:

* size: ``Content-Length`` and the bytes actually read (1 MiB chunks into a temp file)
  against ``MAX_UPLOAD_SIZE_MB`` → 413;
* ZIP bomb: member count, total declared uncompressed size and per-member/overall
  compression ratio → 413; during extraction the bytes really written are counted too
  (headers can lie) and the extraction aborts past the declared size;
* Zip Slip: absolute names, ``..``/``.`` segments, backslashes, drive letters, NUL, symlink
  members and encrypted members → 400;
* the slug comes from the manifest (``slug``/``slug_id``) and is validated against
  ``^[a-z0-9_]+$`` (the reference's critical ``slug_id`` traversal, spec 8.4);
* the manifest is validated (422 naming the fields), ``data_scope`` is checked against
  ownership, and the owner rules hold (an existing config without owner: admin only; with
  an owner: that owner or an admin; non-admin uploads are owned by the uploader).

Extraction goes to a hidden staging folder next to the target and is swapped in with
renames, so a failed upload leaves the previous version untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile

from platform_core.auth.models import CurrentUser
from platform_core.db.slugs import validate_slug
from platform_core.experiments.config_cache import CONFIG_COLLECTION
from platform_core.experiments.manifest import (
    MAX_MANIFEST_BYTES,
    ExperimentManifest,
    ManifestError,
    parse_manifest_text,
)
from platform_core.experiments.scopes import DataScopeError, check_data_scope
from platform_core.experiments.static import resolve_inside

CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
# Export artefacts that are not part of an experiment's code (spec 2.15 step 6).
# Files a platform export adds next to the experiment's own: skipped when an export is
# uploaded back (the standalone app's entry point and runtime are not experiment code).
PLATFORM_FILES = frozenset({"db_config.json", "db_collections.json", "Dockerfile",
                            "docker-compose.yml", "main.py", "standalone_runtime.py"})  # fmt: skip


class UploadError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_bytes: int
    max_uncompressed_bytes: int
    max_members: int = 2000
    max_ratio: float = 100.0
    ratio_min_member_bytes: int = 1024 * 1024

    @classmethod
    def from_max_mb(cls, max_mb: int) -> UploadLimits:
        max_bytes = max_mb * 1024 * 1024
        return cls(max_bytes=max_bytes, max_uncompressed_bytes=max(4 * max_bytes, 64 * 1024 * 1024))


@dataclass(slots=True)
class ZipPlan:
    prefix: str
    members: list[tuple[zipfile.ZipInfo, str]] = field(default_factory=list)
    manifest_bytes: bytes = b""
    total_bytes: int = 0


# -- receiving -------------------------------------------------------------------------------
def _new_temp(dest_dir: Path) -> tuple[int, Path]:
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".zip", dir=dest_dir)
    return fd, Path(name)


async def receive_upload(upload: UploadFile, dest_dir: Path, limits: UploadLimits) -> Path:
    """Copy the uploaded file to a temp file in chunks; 413 once it exceeds the cap.

    Chunk writes go to a local temp file (microseconds each); the file never reaches the
    experiments folder unless every later check passes.
    """
    fd, path = await asyncio.to_thread(_new_temp, dest_dir)
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = await upload.read(CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > limits.max_bytes:
                    raise UploadError(
                        413, f"Upload larger than {limits.max_bytes // (1024 * 1024)} MB"
                    )
                out.write(chunk)
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        raise
    if received == 0:
        await asyncio.to_thread(path.unlink, True)
        raise UploadError(400, "The uploaded file is empty")
    return path


# -- inspecting ------------------------------------------------------------------------------
def check_member_name(name: str) -> str:
    """The member name if it is safe to extract, else :class:`UploadError` (400)."""
    if not name or "\x00" in name:
        raise UploadError(400, "ZIP member with an empty name or a NUL byte")
    if "\\" in name:
        raise UploadError(400, f"ZIP member {name!r} uses backslashes")
    if name.startswith("/") or _DRIVE.match(name):
        raise UploadError(400, f"ZIP member {name!r} has an absolute path")
    parts = name.rstrip("/").split("/")
    if any(p in ("..", ".", "") for p in parts):
        raise UploadError(400, f"ZIP member {name!r} has '..', '.' or empty path segments")
    return name


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _find_prefix(names: list[str]) -> str:
    candidates = sorted(
        (n[: -len("manifest.json")] for n in names
         if n == "manifest.json" or n.endswith("/manifest.json")),
        key=lambda p: (p.count("/"), p),
    )  # fmt: skip
    if not candidates:
        raise UploadError(400, "The ZIP has no manifest.json (at its root or in one folder)")
    depth = candidates[0].count("/")
    if len([c for c in candidates if c.count("/") == depth]) > 1:
        raise UploadError(400, "The ZIP holds several experiments; upload one at a time")
    return candidates[0]


def inspect_zip(path: Path, limits: UploadLimits) -> ZipPlan:
    """Validate the archive's structure and sizes (runs in a thread)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UploadError(400, "The uploaded file is not a valid ZIP archive") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise UploadError(413, f"The ZIP has more than {limits.max_members} members")
        total = 0
        total_compressed = 0
        for info in infos:
            check_member_name(info.filename)
            if _is_symlink(info):
                raise UploadError(400, f"ZIP member {info.filename!r} is a symbolic link")
            if info.flag_bits & 0x1:
                raise UploadError(400, f"ZIP member {info.filename!r} is encrypted")
            total += info.file_size
            total_compressed += info.compress_size
            if (
                info.file_size >= limits.ratio_min_member_bytes
                and info.file_size / max(info.compress_size, 1) > limits.max_ratio
            ):
                raise UploadError(413, f"ZIP member {info.filename!r} has a suspicious "
                                       "compression ratio (ZIP bomb?)")  # fmt: skip
        if total > limits.max_uncompressed_bytes:
            raise UploadError(413, "The ZIP expands to more than "
                                   f"{limits.max_uncompressed_bytes // (1024 * 1024)} MB")  # fmt: skip
        if (
            total >= limits.ratio_min_member_bytes
            and total / max(total_compressed, 1) > limits.max_ratio
        ):
            raise UploadError(413, "The ZIP has a suspicious overall compression ratio (ZIP bomb?)")
        names = [i.filename for i in infos if not i.is_dir()]
        prefix = _find_prefix(names)
        if prefix + "__init__.py" not in names:
            raise UploadError(400, "The experiment has no __init__.py next to its manifest.json")
        plan = ZipPlan(prefix=prefix, total_bytes=total)
        for info in infos:
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = info.filename[len(prefix) :]
            parts = rel.split("/")
            if "__pycache__" in parts or rel.endswith(".pyc") or rel in PLATFORM_FILES:
                continue
            plan.members.append((info, rel))
        manifest_info = zf.getinfo(prefix + "manifest.json")
        if manifest_info.file_size > MAX_MANIFEST_BYTES:
            raise UploadError(413, "manifest.json is too large")
        plan.manifest_bytes = zf.read(manifest_info)
        return plan


def extract_plan(path: Path, plan: ZipPlan, staging: Path, limits: UploadLimits) -> int:
    """Extract the planned members into ``staging``, counting real bytes (runs in a thread)."""
    written_total = 0
    staging.mkdir(parents=True, exist_ok=False)
    with zipfile.ZipFile(path) as zf:
        for info, rel in plan.members:
            target = resolve_inside(staging, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, open(target, "wb") as dst:
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    written += len(chunk)
                    written_total += len(chunk)
                    if written > info.file_size or written_total > limits.max_uncompressed_bytes:
                        raise UploadError(413, f"ZIP member {rel!r} expands beyond its "
                                               "declared size")  # fmt: skip
                    dst.write(chunk)
    return written_total


# -- the whole flow --------------------------------------------------------------------------
async def developer_problem(service: Any, email: str) -> str | None:
    """Why ``email`` cannot own experiments (unknown user, no developer role), or None."""
    if await service.db["users"].find_one({"email": email}, {"_id": 1}) is None:
        return "unknown user"
    authz = service.app.state.authz
    if not await authz.check(email, "experiments", "manage_own"):
        return "the user is not a developer"
    return None


async def _owner_for(
    service: Any, slug: str, manifest: ExperimentManifest, user: CurrentUser, is_admin: bool
) -> tuple[str | None, dict[str, Any] | None]:
    db = service.db
    existing = await db[CONFIG_COLLECTION].find_one({"slug": slug})
    if existing is not None:
        owner = existing.get("owner_email")
        if not owner and not is_admin:
            raise UploadError(403, f"Experiment {slug!r} is managed by administrators")
        if owner and not is_admin and owner != user.email:
            raise UploadError(403, f"Experiment {slug!r} belongs to another developer")
    elif not is_admin and service.folder(slug).exists():
        raise UploadError(
            403, f"Experiment folder {slug!r} exists and is managed by administrators"
        )
    if not is_admin:
        return user.email, existing
    if manifest.developer_id:
        problem = await developer_problem(service, manifest.developer_id)
        if problem:
            raise UploadError(422, f"developer_id: {problem}",
                              [{"field": "developer_id", "message": problem}])  # fmt: skip
        return manifest.developer_id, existing
    return (existing or {}).get("owner_email"), existing


def build_config(
    slug: str,
    manifest: ExperimentManifest,
    owner: str | None,
    existing: dict[str, Any] | None,
) -> dict[str, Any]:
    """The full config document to *replace* the old one with (no stale leftovers)."""
    doc = manifest.to_config()
    doc.pop("developer_id", None)
    doc["slug"] = slug
    doc["status"] = manifest.status or (existing or {}).get("status") or "active"
    if owner:
        doc["owner_email"] = owner
    else:
        doc.pop("owner_email", None)
    now = datetime.now(UTC)
    doc["created_at"] = (existing or {}).get("created_at", now)
    doc["updated_at"] = now
    return doc


async def _swap_in(service: Any, slug: str, staging: Path) -> None:
    target = service.folder(slug)
    trash = target.with_name(f".trash-{slug}-{secrets.token_hex(4)}")

    def swap() -> None:
        if target.exists():
            os.replace(target, trash)
        os.replace(staging, target)
        if trash.exists():
            shutil.rmtree(trash, ignore_errors=True)

    await asyncio.to_thread(swap)


async def handle_upload(
    service: Any, upload: UploadFile, user: CurrentUser, *, is_admin: bool,
    content_length: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    limits = UploadLimits.from_max_mb(service.settings.max_upload_size_mb)
    if content_length is not None and content_length > limits.max_bytes + 64 * 1024:
        raise UploadError(413, f"Upload larger than {service.settings.max_upload_size_mb} MB")
    name = (upload.filename or "").lower()
    if name and not name.endswith(".zip"):
        raise UploadError(400, "Upload a .zip file")
    uploads_dir = service.exports.exports_dir.parent / "uploads"  # DATA_DIR/uploads
    tmp = await receive_upload(upload, uploads_dir, limits)
    staging: Path | None = None
    try:
        plan = await asyncio.to_thread(inspect_zip, tmp, limits)
        try:
            manifest = parse_manifest_text(plan.manifest_bytes)
        except ManifestError as exc:
            raise UploadError(422, str(exc), exc.errors) from None
        slug = manifest.declared_slug
        if not slug:
            raise UploadError(422, "manifest.json must name its slug",
                              [{"field": "slug", "message": "required for uploads"}])  # fmt: skip
        validate_slug(slug)
        owner, existing = await _owner_for(service, slug, manifest, user, is_admin)
        try:
            await check_data_scope(service.config_cache, slug, manifest.data_scope,
                                   user_email=user.email, is_admin=is_admin)  # fmt: skip
        except DataScopeError as exc:
            raise UploadError(exc.status, str(exc)) from None
        await asyncio.to_thread(service.root.mkdir, parents=True, exist_ok=True)
        staging = service.root / f".upload-{slug}-{secrets.token_hex(4)}"
        files = len(plan.members)
        await asyncio.to_thread(extract_plan, tmp, plan, staging, limits)
        await _swap_in(service, slug, staging)
        staging = None
        config = build_config(slug, manifest, owner, existing)
        await service.db[CONFIG_COLLECTION].replace_one({"slug": slug}, config, upsert=True)
        service.invalidate(slug)
        service.forget_indexes(slug)
        entry = await service.register(slug)
        return {
            "status": "ok",
            "slug": slug,
            "slug_id": slug,
            "files": files,
            "owner_email": owner,
            "registered": entry is not None,
            "error": service.errors.get(slug),
            "message": f"Experiment {slug!r} uploaded"
            + ("" if entry is not None else " (not active or failed to register)"),
        }
    finally:
        tmp.unlink(missing_ok=True)
        if staging is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(shutil.rmtree, staging, True)
