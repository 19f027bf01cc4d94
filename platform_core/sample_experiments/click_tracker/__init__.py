"""Click tracker: write-heavy sample experiment.

``POST /experiments/click_tracker/api/click`` with ``{"page": "...", "element": "..."}``
stores one document in ``click_tracker_clicks`` (tagged ``experiment_id`` by the scoped
layer). No login needed (``auth_required: false``), so load tests can hammer it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from platform_core.experiments.deps import ExperimentActorHandle, ExperimentDB, render_experiment

bp = APIRouter()


class Click(BaseModel):
    page: str = Field(min_length=1, max_length=200, pattern=r"^[\w\-./]+$")
    element: str | None = Field(default=None, max_length=100)


@bp.get("/")
async def index(request: Request, db: ExperimentDB) -> Response:
    recent = (
        await db.clicks.find({}, {"_id": 0, "page": 1, "element": 1, "ts": 1})
        .sort("ts", -1)
        .limit(10)
        .to_list()
    )
    return await render_experiment(request, "index.html", {"recent": recent})


@bp.post("/api/click", status_code=201)
async def click(request: Request, body: Click, db: ExperimentDB) -> dict[str, Any]:
    user = getattr(request.state, "current_user", None)
    doc = {
        "page": body.page,
        "element": body.element,
        "ts": datetime.now(UTC),
        "user": getattr(user, "email", None),
    }
    result = await db.clicks.insert_one(doc)
    return {"status": "ok", "id": str(result.inserted_id)}


@bp.get("/api/clicks")
async def clicks(
    db: ExperimentDB,
    page: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    query = {"page": page} if page else {}
    rows = (
        await db.clicks.find(query, {"_id": 0, "page": 1, "element": 1, "ts": 1})
        .sort("ts", -1)
        .limit(limit)
        .to_list()
    )
    return {"clicks": [{**r, "ts": r["ts"].isoformat()} for r in rows]}


@bp.get("/api/count")
async def count(actor: ExperimentActorHandle) -> dict[str, Any]:
    return {"clicks": await actor.call("count")}
