"""Click analytics: aggregation over another experiment's data (``data_scope``).

Reads ``click_tracker_clicks`` read-only through
``db.collection("clicks", owner="click_tracker")`` (allowed because the manifest lists
``click_tracker`` in ``data_scope``), groups clicks by page, and can store snapshots of the
summary in its own ``analytics_snapshots``. Developers and admins only (``auth_policy``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from platform_core.experiments.deps import ExperimentDB, render_experiment

bp = APIRouter()


async def summary(db: Any, limit: int = 50) -> list[dict[str, Any]]:
    clicks = db.collection("clicks", owner="click_tracker")
    pipeline = [
        {"$group": {"_id": "$page", "clicks": {"$sum": 1}, "last": {"$max": "$ts"}}},
        {"$sort": {"clicks": -1, "_id": 1}},
        {"$limit": limit},
    ]
    rows = await (await clicks.aggregate(pipeline)).to_list()
    return [
        {
            "page": r["_id"],
            "clicks": r["clicks"],
            "last": r["last"].isoformat() if r.get("last") else None,
        }
        for r in rows
    ]


@bp.get("/")
async def index(request: Request, db: ExperimentDB) -> Response:
    rows = await summary(db)
    snapshots = await db.snapshots.count_documents({})
    return await render_experiment(request, "index.html", {"rows": rows, "snapshots": snapshots})


@bp.get("/api/summary")
async def api_summary(
    db: ExperimentDB, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    return {"pages": await summary(db, limit)}


@bp.post("/api/snapshot", status_code=201)
async def snapshot(db: ExperimentDB) -> dict[str, Any]:
    rows = await summary(db)
    result = await db.snapshots.insert_one({"created_at": datetime.now(UTC), "pages": rows})
    return {"status": "ok", "id": str(result.inserted_id), "pages": len(rows)}
