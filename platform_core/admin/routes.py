"""Experiment administration under ``/admin`` (every route requires ``admin_panel:access``).

Pages: ``/admin/`` (dashboard) and ``/admin/experiments/{slug}`` (manifest editor, files,
indexes, exports). JSON API under ``/admin/api``: save-manifest, reload, file tree, file
content, index status, export (build, list, download, invalidate), upload, delete, and
service stats (knob variants and cache counters, for studies).

Every ``{slug}`` is validated against ``^[a-z0-9_]+$`` before it touches the filesystem,
the registry or a collection name (400 otherwise); every failure is a 4xx with a message.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile as StarletteUploadFile

from platform_core.admin.delete import DeleteError, confirmation_phrase, delete_experiment
from platform_core.admin.files import FileAccessError, read_file_safely
from platform_core.admin.upload import UploadError, build_config, developer_problem, handle_upload
from platform_core.auth.models import CurrentUser
from platform_core.db.slugs import validate_slug
from platform_core.deps import require_admin
from platform_core.experiments.config_cache import CONFIG_COLLECTION
from platform_core.experiments.indexes import index_status
from platform_core.experiments.manifest import (
    MAX_MANIFEST_BYTES,
    ManifestError,
    parse_manifest_text,
)
from platform_core.experiments.scopes import DataScopeError, check_data_scope
from platform_core.export.collections import to_json
from platform_core.export.manager import ExportError
from platform_core.ratelimit import RateLimit
from platform_core.web import render

AdminUser = Annotated[CurrentUser, Depends(require_admin)]
DASHBOARD_LIMIT = 1000
_LIST_FIELDS = {"_id": 0, "slug": 1, "name": 1, "status": 1, "owner_email": 1,
                "description": 1, "updated_at": 1}  # fmt: skip


def checked_slug(slug: str) -> str:
    try:
        return validate_slug(slug)
    except ValueError as exc:
        raise HTTPException(400, f"Invalid experiment slug: {exc}") from None


def error_json(
    status: int, message: str, errors: list[dict[str, str]] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"detail": message, "status": "error"}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


class SaveManifestBody(BaseModel):
    content: str = Field(max_length=MAX_MANIFEST_BYTES, description="manifest.json as text")


class DeleteBody(BaseModel):
    confirmation: str = Field(max_length=200)


class InvalidateBody(BaseModel):
    delete_file: bool = False


def _jsonable(doc: Any) -> Any:
    return json.loads(to_json(doc))


def build_admin_router(service: Any) -> APIRouter:
    router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])

    # -- pages ---------------------------------------------------------------------------
    @router.get("/", include_in_schema=False)
    async def dashboard(
        request: Request,
        owner: Annotated[str | None, Query(max_length=254)] = None,
        status: Annotated[str | None, Query(max_length=20)] = None,
    ) -> Response:
        query: dict[str, Any] = {}
        if owner:
            query["owner_email"] = None if owner == "-" else owner.strip().lower()
        if status:
            query["status"] = status
        cursor = service.db[CONFIG_COLLECTION].find(query, _LIST_FIELDS)
        configs = [doc async for doc in cursor.sort("slug", 1).limit(DASHBOARD_LIMIT)]
        found, orphaned = [], []
        for cfg in configs:
            slug = cfg.get("slug")
            try:
                has_code = (service.folder(validate_slug(slug)) / "__init__.py").is_file()
            except (ValueError, TypeError):
                has_code = False
            cfg["registered"] = slug in service.registry
            cfg["error"] = service.errors.get(slug)
            (found if has_code else orphaned).append(cfg)
        owners = sorted({c.get("owner_email") for c in configs if c.get("owner_email")})
        return await render(request, "admin/dashboard.html", {
            "found": found, "orphaned": orphaned, "owners": owners,
            "filter_owner": owner or "", "filter_status": status or "",
            "strategies": service.strategies.as_dict(),
        })  # fmt: skip

    @router.get("/experiments/{slug}", include_in_schema=False)
    async def experiment_page(request: Request, slug: str) -> Response:
        slug = checked_slug(slug)
        config = await service.db[CONFIG_COLLECTION].find_one({"slug": slug})
        if config is None:
            raise HTTPException(404, f"Experiment {slug!r} not found")
        manifest = {k: v for k, v in _jsonable(config).items()
                    if k not in ("_id", "created_at", "updated_at", "source")}  # fmt: skip
        return await render(request, "admin/experiment.html", {
            "slug": slug, "config": config, "registered": slug in service.registry,
            "error": service.errors.get(slug),
            "manifest_text": json.dumps(manifest, indent=2, sort_keys=True),
            "confirmation": confirmation_phrase(slug),
        })  # fmt: skip

    # -- manifest and registration --------------------------------------------------------
    @router.post("/api/save-manifest/{slug}")
    async def save_manifest(slug: str, body: SaveManifestBody, user: AdminUser) -> Response:
        slug = checked_slug(slug)
        try:
            manifest = parse_manifest_text(body.content)
        except ManifestError as exc:
            return error_json(422, str(exc), exc.errors)
        if manifest.declared_slug and manifest.declared_slug != slug:
            return error_json(400, f"manifest slug {manifest.declared_slug!r} differs from {slug!r}",
                              [{"field": "slug", "message": "must match the URL"}])  # fmt: skip
        if not service.folder(slug).is_dir():
            return error_json(404, f"Experiment folder {slug!r} not found; upload it first")
        try:
            await check_data_scope(service.config_cache, slug, manifest.data_scope,
                                   user_email=user.email, is_admin=True)  # fmt: skip
        except DataScopeError as exc:
            return error_json(exc.status, str(exc), [{"field": "data_scope", "message": str(exc)}])
        db = service.db
        old = await db[CONFIG_COLLECTION].find_one({"slug": slug})
        owner = manifest.developer_id or (old or {}).get("owner_email")
        problem = manifest.developer_id and await developer_problem(service, manifest.developer_id)
        if problem:
            return error_json(422, f"developer_id: {problem}",
                              [{"field": "developer_id", "message": problem}])  # fmt: skip
        config = build_config(slug, manifest, owner, old)
        await db[CONFIG_COLLECTION].replace_one({"slug": slug}, config, upsert=True)
        service.invalidate(slug)
        changed = old is None or any(
            (old or {}).get(k) != config.get(k) for k in ("status", "data_scope", "managed_indexes")
        )
        reloaded = False
        if changed:
            service.forget_indexes(slug)
            await service.register(slug)
            reloaded = True
        return JSONResponse({
            "status": "ok", "slug": slug, "reloaded": reloaded,
            "registered": slug in service.registry, "error": service.errors.get(slug),
        })  # fmt: skip

    @router.post("/api/reload-experiment/{slug}")
    async def reload_experiment(slug: str) -> Response:
        slug = checked_slug(slug)
        if await service.db[CONFIG_COLLECTION].find_one({"slug": slug}, {"_id": 1}) is None:
            return error_json(404, f"Experiment {slug!r} not found")
        service.invalidate(slug)
        entry = await service.register(slug)
        return JSONResponse({"status": "ok", "slug": slug, "registered": entry is not None,
                             "error": service.errors.get(slug)})  # fmt: skip

    @router.post("/api/reload-all")
    async def reload_all() -> Response:
        return JSONResponse({"status": "ok", **await service.reload_all()})

    @router.get("/api/experiments/stats")
    async def stats() -> Response:
        return JSONResponse(_jsonable(service.stats()))

    # -- files --------------------------------------------------------------------------
    @router.get("/api/file-tree/{slug}")
    async def file_tree(slug: str) -> Response:
        slug = checked_slug(slug)
        folder = service.folder(slug)
        if not folder.is_dir():
            return error_json(404, f"Experiment folder {slug!r} not found")
        tree = await service.file_trees.tree(slug, folder)
        return JSONResponse({"status": "ok", "slug": slug, "tree": tree})

    @router.get("/api/get-file-content/{slug}")
    async def file_content(
        slug: str, path: Annotated[str, Query(min_length=1, max_length=1024)]
    ) -> Response:
        slug = checked_slug(slug)
        folder = service.folder(slug)
        if not folder.is_dir():
            return error_json(404, f"Experiment folder {slug!r} not found")
        try:
            result = await read_file_safely(folder, path)
        except FileAccessError as exc:
            return error_json(exc.status, exc.message)
        return JSONResponse({"status": "ok", "slug": slug, **result})

    # -- indexes ------------------------------------------------------------------------
    @router.get("/api/index-status/{slug}")
    async def get_index_status(slug: str) -> Response:
        slug = checked_slug(slug)
        config = await service.config_cache.get(slug)
        if config is None:
            return error_json(404, f"Experiment {slug!r} not found")
        current = await index_status(service.db, slug, config.get("managed_indexes") or {})
        return JSONResponse({"status": "ok", "slug": slug, "indexes": current,
                             "last_apply": service.index_reports.get(slug, [])})  # fmt: skip

    # -- exports ------------------------------------------------------------------------
    async def _export(slug: str, user: CurrentUser) -> Any:
        config = await service.db[CONFIG_COLLECTION].find_one({"slug": slug})
        folder = service.folder(slug)
        if config is None or not folder.is_dir():
            raise HTTPException(404, f"Experiment {slug!r} not found")
        known = service.known_slugs()
        async for doc in service.db[CONFIG_COLLECTION].find({}, {"slug": 1}):
            if isinstance(doc.get("slug"), str):
                known.add(doc["slug"])
        return await service.exports.export(slug, folder, config, known_slugs=known,
                                            user_email=user.email)  # fmt: skip

    @router.post("/api/export/{slug}", dependencies=[Depends(RateLimit("export"))])
    async def export_json(slug: str, user: AdminUser) -> Response:
        result = await _export(checked_slug(slug), user)
        return JSONResponse(result.as_dict())

    @router.get("/package/{slug}", dependencies=[Depends(RateLimit("admin_package"))])
    async def export_download(slug: str, user: AdminUser) -> Response:
        result = await _export(checked_slug(slug), user)
        return FileResponse(result.path, media_type="application/zip", filename=result.filename,
                            headers={"X-Export-Id": result.export_id})  # fmt: skip

    @router.get("/api/exports")
    async def list_exports(
        slug_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        if slug_id:
            checked_slug(slug_id)
        return JSONResponse({"status": "ok", "exports": await service.exports.list_logs(slug_id)})

    @router.get(
        "/api/exports/{export_id}/download",
        dependencies=[Depends(RateLimit("export_download"))],
    )
    async def download_export(export_id: str) -> Response:
        try:
            path, _log = await service.exports.file_for_download(export_id)
        except ExportError as exc:
            return error_json(exc.status, exc.message)
        return FileResponse(path, media_type="application/zip", filename=path.name)

    @router.post("/api/exports/{export_id}/invalidate")
    async def invalidate_export(
        export_id: str, user: AdminUser, body: Annotated[InvalidateBody | None, Body()] = None
    ) -> Response:
        try:
            result = await service.exports.invalidate(
                export_id, by=user.email, delete_file=bool(body and body.delete_file)
            )
        except ExportError as exc:
            return error_json(exc.status, exc.message)
        return JSONResponse(result)

    # -- upload and delete -----------------------------------------------------------------
    @router.post("/api/upload-experiment")
    async def admin_upload(request: Request, user: AdminUser) -> Response:
        """Multipart form with one ``file`` field holding the experiment ZIP."""
        return await upload_response(service, request, user, is_admin=True)

    @router.delete("/api/delete-experiment/{slug}")
    async def admin_delete(slug: str, body: DeleteBody) -> Response:
        return await delete_response(service, checked_slug(slug), body.confirmation)

    return router


def _content_length(request: Request) -> int | None:
    try:
        return int(request.headers.get("content-length", ""))
    except ValueError:
        return None


async def upload_response(
    service: Any, request: Request, user: CurrentUser, *, is_admin: bool
) -> Response:
    """Parse the form only after the ``Content-Length`` check (FastAPI would parse a
    ``File()`` parameter, spooling the whole body, before any handler code runs)."""
    max_bytes = service.settings.max_upload_size_mb * 1024 * 1024
    length = _content_length(request)
    if length is not None and length > max_bytes + 64 * 1024:
        return error_json(413, f"Upload larger than {service.settings.max_upload_size_mb} MB")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return error_json(400, "Send the ZIP as multipart/form-data in a field named 'file'")
    form = await request.form(max_files=1, max_fields=10)
    try:
        file = form.get("file")
        if not isinstance(file, StarletteUploadFile):
            return error_json(422, "Missing form field 'file' with the experiment ZIP",
                              [{"field": "file", "message": "required"}])  # fmt: skip
        result = await handle_upload(service, file, user, is_admin=is_admin,
                                     content_length=length)  # fmt: skip
    except UploadError as exc:
        return error_json(exc.status, exc.message, exc.errors)
    except ValueError as exc:  # slug validation and similar input errors
        return error_json(400, str(exc))
    finally:
        await form.close()
    return JSONResponse(result)


async def delete_response(service: Any, slug: str, confirmation: str) -> Response:
    try:
        report = await delete_experiment(service, slug, confirmation)
    except DeleteError as exc:
        return error_json(exc.status, exc.message)
    except ValueError as exc:
        return error_json(400, str(exc))
    return JSONResponse(_jsonable(report))
