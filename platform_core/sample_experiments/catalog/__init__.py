"""Product catalog: read-heavy sample experiment.

Every request passes the experiment's ``auth_policy`` (one config lookup through the config
cache) and the listing reads its page size from the config again (the request-level cache
collapses the two). Listings use the managed index ``category_price``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response

from platform_core.experiments.deps import (
    ExperimentActorHandle,
    ExperimentConfig,
    ExperimentFacade,
    render_experiment,
)

bp = APIRouter()

PUBLIC_FIELDS = {
    "_id": 0,
    "sku": 1,
    "name": 1,
    "category": 1,
    "price": 1,
    "stock": 1,
    "description": 1,
}


def _page_size(config: dict[str, Any], requested: int | None) -> int:
    settings = config.get("catalog_settings") or {}
    default = int(settings.get("page_size", 20))
    ceiling = int(settings.get("max_page_size", 100))
    return max(1, min(requested or default, ceiling))


async def _listing(
    db: Any, config: dict[str, Any], category: str | None, page: int, page_size: int | None
) -> dict[str, Any]:
    size = _page_size(config, page_size)
    query: dict[str, Any] = {"category": category} if category else {}
    products = db.products
    cursor = products.find(query, PUBLIC_FIELDS).sort([("category", 1), ("price", 1), ("_id", 1)])
    items = await cursor.skip((page - 1) * size).limit(size).to_list()
    total = await products.count_documents(query)
    return {
        "items": items,
        "page": page,
        "page_size": size,
        "total": total,
        "pages": (total + size - 1) // size,
    }


@bp.get("/")
async def index(
    request: Request,
    db: ExperimentFacade,
    config: ExperimentConfig,
    category: Annotated[str | None, Query(max_length=50)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    listing = await _listing(db, config, category, page, None)
    categories = sorted(await db.products.distinct("category"))
    return await render_experiment(
        request,
        "index.html",
        {
            "listing": listing,
            "categories": categories,
            "category": category or "",
        },
    )


@bp.get("/api/products")
async def list_products(
    db: ExperimentFacade,
    config: ExperimentConfig,
    category: Annotated[str | None, Query(max_length=50)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> dict[str, Any]:
    return await _listing(db, config, category, page, page_size)


@bp.get("/api/products/{sku}")
async def get_product(
    sku: Annotated[str, Path(max_length=40)], db: ExperimentFacade
) -> dict[str, Any]:
    product = await db.products.find_one({"sku": sku}, PUBLIC_FIELDS)
    if product is None:
        raise HTTPException(404, f"No product {sku!r}")
    return product


@bp.get("/api/categories")
async def categories(db: ExperimentFacade) -> dict[str, Any]:
    return {"categories": sorted(await db.products.distinct("category"))}


@bp.get("/api/stats")
async def stats(actor: ExperimentActorHandle) -> dict[str, Any]:
    return await actor.call("stats")
