"""Developer self-service: ``POST /api/upload-experiment`` and ``DELETE /api/delete-experiment``.

Developers (``experiments:manage_own``) and admins. An upload by a developer is owned by
the uploader; replacing or deleting an experiment needs its owner or an admin, and
experiments without an owner are admin-only (spec 2.9, 2.15).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from platform_core.admin.routes import (
    DeleteBody,
    checked_slug,
    delete_response,
    error_json,
    upload_response,
)
from platform_core.auth.models import CurrentUser
from platform_core.deps import get_authz, is_admin, require_admin_or_developer
from platform_core.experiments.config_cache import CONFIG_COLLECTION

DeveloperUser = Annotated[CurrentUser, Depends(require_admin_or_developer)]


def build_developer_router(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["experiments"])

    @router.post("/upload-experiment")
    async def developer_upload(request: Request, user: DeveloperUser) -> Response:
        admin = await is_admin(get_authz(request), user)
        return await upload_response(service, request, user, is_admin=admin)

    @router.delete("/delete-experiment/{slug}")
    async def developer_delete(
        request: Request, slug: str, body: DeleteBody, user: DeveloperUser
    ) -> Response:
        slug = checked_slug(slug)
        if not await is_admin(get_authz(request), user):
            config = await service.db[CONFIG_COLLECTION].find_one(
                {"slug": slug}, {"owner_email": 1}
            )
            if config is None:
                return error_json(404, f"Experiment {slug!r} not found")
            if config.get("owner_email") != user.email:
                return error_json(403, "Only the experiment's owner or an admin may delete it")
        return await delete_response(service, slug, body.confirmation)

    return router
