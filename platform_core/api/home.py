"""``/`` (active experiments) and ``/my-experiments`` (the caller's own)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from platform_core.deps import AdminOrDeveloper, PlatformDB
from platform_core.web import render

router = APIRouter(tags=["pages"])

CONFIGS = "experiments_config"
LIST_LIMIT = 500
# Only what the cards show: configs can carry large manifests (indexes, policies).
CARD_FIELDS = {
    "_id": 0, "slug": 1, "name": 1, "description": 1, "status": 1,
    "auth_required": 1, "auth_policy": 1, "owner_email": 1,
}  # fmt: skip


async def _configs(db: Any, query: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = db[CONFIGS].find(query, CARD_FIELDS).sort("slug", 1).limit(LIST_LIMIT)
    return [doc async for doc in cursor]


@router.get("/", include_in_schema=False)
async def home(request: Request, db: PlatformDB) -> Response:
    experiments = await _configs(db, {"status": "active"})
    return await render(request, "index.html", {"experiments": experiments})


@router.get("/my-experiments", include_in_schema=False)
async def my_experiments(request: Request, db: PlatformDB, user: AdminOrDeveloper) -> Response:
    # Every status, not only active: a developer needs to see their drafts too.
    experiments = await _configs(db, {"owner_email": user.email})
    return await render(request, "my_experiments.html", {"experiments": experiments})
