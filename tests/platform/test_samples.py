"""The sample experiments as a realistic subject: catalog, click_tracker, analytics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI

from platform_core.db.scoped import ScopeViolation
from platform_core.seed import seed_demo_data


@pytest.mark.asyncio
async def test_catalog_reads_paginate_over_indexed_products(app: FastAPI, http: Any) -> None:
    await seed_demo_data(app.state.db, users=3, docs_per_collection=250, configs=False,
                         now=datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    r = await http.get("/experiments/catalog/api/products", params={"page": 2, "page_size": 10})
    body = r.json()
    assert r.status_code == 200 and len(body["items"]) == 10
    assert body["total"] == 250 and body["pages"] == 25 and body["page"] == 2
    prices = [(p["category"], p["price"]) for p in body["items"]]
    assert prices == sorted(prices)
    assert "experiment_id" not in body["items"][0]
    capped = (
        await http.get("/experiments/catalog/api/products", params={"page_size": 1000})
    ).json()
    assert capped["page_size"] == 100  # max_page_size from the config
    default = (await http.get("/experiments/catalog/api/products")).json()
    assert default["page_size"] == 20
    books = (
        await http.get("/experiments/catalog/api/products", params={"category": "books"})
    ).json()
    assert books["total"] > 0 and {p["category"] for p in books["items"]} == {"books"}
    assert (
        await http.get("/experiments/catalog/api/products", params={"page": 0})
    ).status_code == 422
    sku = body["items"][0]["sku"]
    assert (await http.get(f"/experiments/catalog/api/products/{sku}")).json()["sku"] == sku
    assert (await http.get("/experiments/catalog/api/products/NOPE")).status_code == 404
    page = await http.get("/experiments/catalog/", params={"category": "books"})
    assert page.status_code == 200 and 'href="static/style.css"' in page.text
    stats = (await http.get("/experiments/catalog/api/stats")).json()
    assert sum(c["products"] for c in stats["categories"]) == 250


@pytest.mark.asyncio
async def test_click_tracker_and_analytics(app: FastAPI, http: Any, admin_http: Any) -> None:
    for page in ["home", "home", "docs"]:
        r = await http.post(
            "/experiments/click_tracker/api/click", json={"page": page, "element": "cta"}
        )
        assert r.status_code == 201
    bad = await http.post("/experiments/click_tracker/api/click", json={"page": "<script>"})
    assert bad.status_code == 422
    assert (
        await http.post("/experiments/click_tracker/api/click", content=b"{")
    ).status_code == 422
    clicks = (
        await http.get("/experiments/click_tracker/api/clicks", params={"page": "home"})
    ).json()
    assert len(clicks["clicks"]) == 2
    assert (await http.get("/experiments/click_tracker/api/count")).json() == {"clicks": 3}
    assert (await http.get("/experiments/click_tracker/")).status_code == 200
    doc = await app.state.db.click_tracker_clicks.find_one({"page": "docs"})
    assert doc["experiment_id"] == "click_tracker"

    summary = (await admin_http.get("/experiments/analytics/api/summary")).json()
    assert [(p["page"], p["clicks"]) for p in summary["pages"]] == [("home", 2), ("docs", 1)]
    snap = await admin_http.post("/experiments/analytics/api/snapshot")
    assert snap.status_code == 201
    stored = await app.state.db.analytics_snapshots.find_one({})
    assert stored["experiment_id"] == "analytics"
    assert (await admin_http.get("/experiments/analytics/")).status_code == 200


@pytest.mark.asyncio
async def test_data_scope_is_read_only_and_only_where_listed(app: FastAPI) -> None:
    service = app.state.experiment_service
    analytics = service.scoped_db(service.registry["analytics"])
    assert service.registry["analytics"].read_scopes == ("analytics", "click_tracker")
    foreign = analytics.collection("clicks", owner="click_tracker")
    assert await foreign.count_documents({}) == 0
    with pytest.raises(ScopeViolation):
        await foreign.insert_one({"page": "forged"})
    with pytest.raises(ScopeViolation):
        await foreign.delete_many({})
    catalog = service.scoped_db(service.registry["catalog"])
    with pytest.raises(ScopeViolation):
        catalog.collection("clicks", owner="click_tracker")
    actor = service.actors.get("analytics")
    assert await actor.call("top_pages") == []
    with pytest.raises(AttributeError):
        await actor.call("_private")
