"""Experiment administration routes: access control, file viewer safety, manifests, reloads."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from platform_core.experiments.testing import copy_samples, started_app
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for, login, make_user

ADMIN_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/admin/", None),
    ("GET", "/admin/experiments/catalog", None),
    ("POST", "/admin/api/save-manifest/catalog", {"content": "{}"}),
    ("POST", "/admin/api/reload-experiment/catalog", None),
    ("POST", "/admin/api/reload-all", None),
    ("GET", "/admin/api/experiments/stats", None),
    ("GET", "/admin/api/file-tree/catalog", None),
    ("GET", "/admin/api/get-file-content/catalog?path=manifest.json", None),
    ("GET", "/admin/api/index-status/catalog", None),
    ("POST", "/admin/api/export/catalog", None),
    ("GET", "/admin/package/catalog", None),
    ("GET", "/admin/api/exports", None),
    ("GET", "/admin/api/exports/0123456789abcdef01234567/download", None),
    ("POST", "/admin/api/exports/0123456789abcdef01234567/invalidate", None),
    ("POST", "/admin/api/upload-experiment", None),
    ("DELETE", "/admin/api/delete-experiment/catalog", {"confirmation": "x"}),
]


@pytest.fixture
def admin_settings(platform_settings: Settings, tmp_path: Path) -> Settings:
    root = copy_samples(tmp_path / "experiments")
    folder = root / "catalog"
    (folder / "static" / "logo.bin").write_bytes(b"\x89PNG\x00\x01\x02" * 10)
    outside = tmp_path / "outside.txt"
    outside.write_text("outside secret")
    os.symlink(outside, folder / "templates" / "escape.html")
    return platform_settings.model_copy(update={"experiments_dir": root})


@pytest_asyncio.fixture
async def admin_app(admin_settings: Settings) -> AsyncIterator[FastAPI]:
    async with started_app(admin_settings) as app:
        yield app


@pytest_asyncio.fixture
async def admin(admin_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(admin_app) as client:
        await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        yield client


async def _request(client: httpx.AsyncClient, method: str, url: str, body: Any) -> httpx.Response:
    if body is None:
        return await client.request(method, url)
    return await client.request(method, url, json=body)


@pytest.mark.asyncio
async def test_anonymous_and_non_admins_are_refused(admin_app: FastAPI) -> None:
    await make_user(admin_app, "dev@example.com", roles=["developer"])
    await make_user(admin_app, "plain@example.com")
    async with (
        client_for(admin_app) as anon,
        client_for(admin_app) as dev,
        client_for(admin_app) as plain,
    ):
        await login(dev, "dev@example.com", "user-pass-123")
        await login(plain, "plain@example.com", "user-pass-123")
        for method, url, body in ADMIN_ROUTES:
            r = await _request(anon, method, url, body)
            expected = {401} if "/api/" in url else {307}
            assert r.status_code in expected, (method, url, r.status_code)
            if r.status_code == 307:
                assert r.headers["location"].startswith("/auth/login")
            for client in (dev, plain):
                r = await _request(client, method, url, body)
                assert r.status_code == 403, (method, url, r.status_code)
    # nothing was changed by the refused calls
    assert await admin_app.state.db.experiments_config.find_one({"slug": "catalog"})


@pytest.mark.asyncio
async def test_dashboard_and_detail_page(admin: httpx.AsyncClient, admin_app: FastAPI) -> None:
    await admin_app.state.db.experiments_config.insert_one({"slug": "ghost", "name": "Ghost",
                                                            "status": "draft"})  # fmt: skip
    page = await admin.get("/admin/")
    assert page.status_code == 200
    assert "/admin/experiments/catalog" in page.text and "Orphaned configs (1)" in page.text
    filtered = await admin.get("/admin/", params={"status": "draft"})
    assert "/admin/experiments/catalog" not in filtered.text and "ghost" in filtered.text
    detail = await admin.get("/admin/experiments/catalog")
    assert detail.status_code == 200 and "sudo rm -rf experiments/catalog" in detail.text
    assert (await admin.get("/admin/experiments/nope")).status_code == 404


@pytest.mark.asyncio
@pytest.mark.parametrize("slug", ["..", "A", "a-b", "ｃatalog", "cаtalog", "a%20b", "%2e%2e"])
async def test_bad_slugs_are_400_everywhere(admin: httpx.AsyncClient, slug: str) -> None:
    for method, template in [
        ("GET", "/admin/api/file-tree/{}"),
        ("GET", "/admin/api/index-status/{}"),
        ("POST", "/admin/api/reload-experiment/{}"),
        ("POST", "/admin/api/export/{}"),
        ("GET", "/admin/api/get-file-content/{}?path=a"),
        ("GET", "/admin/package/{}"),
    ]:
        r = await admin.request(method, template.format(slug))
        # httpx normalises "/admin/package/.." to "/admin" (a redirect): nothing reaches a slug
        allowed = (400, 404, 307) if slug == ".." else (400, 404)
        assert r.status_code in allowed, (method, template, slug, r.status_code)
        if "/api/" in template and r.status_code != 307:
            assert r.json()["status"] == "error"
    r = await admin.post(f"/admin/api/save-manifest/{slug}", json={"content": "{}"})
    assert r.status_code in (400, 404)
    r = await admin.request(
        "DELETE", "/admin/api/delete-experiment/a/b", json={"confirmation": "x"}
    )
    assert r.status_code in (404, 405)


@pytest.mark.asyncio
async def test_file_tree_is_cached_and_invalidated(
    admin: httpx.AsyncClient, admin_app: FastAPI
) -> None:
    service = admin_app.state.experiment_service
    r = await admin.get("/admin/api/file-tree/catalog")
    assert r.status_code == 200
    names = {n["name"]: n for n in r.json()["tree"]}
    assert {"manifest.json", "__init__.py", "static", "templates"} <= set(names)
    assert "__pycache__" not in names
    escape = next(c for c in names["templates"]["children"] if c["name"] == "escape.html")
    assert escape["type"] == "symlink"
    scans = service.file_trees.scans
    await admin.get("/admin/api/file-tree/catalog")
    assert service.file_trees.scans == scans  # ttl hit
    service.invalidate("catalog")
    await admin.get("/admin/api/file-tree/catalog")
    assert service.file_trees.scans == scans + 1


@pytest.mark.asyncio
async def test_file_content_and_traversal(admin: httpx.AsyncClient) -> None:
    ok = await admin.get("/admin/api/get-file-content/catalog", params={"path": "manifest.json"})
    assert ok.status_code == 200 and json.loads(ok.json()["content"])["slug"] == "catalog"
    binary = await admin.get(
        "/admin/api/get-file-content/catalog", params={"path": "static/logo.bin"}
    )
    assert binary.json()["binary"] is True and binary.json()["content"].startswith("[binary")
    cases = {
        "../catalog/manifest.json": 400,
        "../../outside.txt": 400,
        "/etc/passwd": 400,
        "static/../../analytics/manifest.json": 400,
        "..\\manifest.json": 400,
        "C:/windows/win.ini": 400,
        "a\x00b": 400,
        "templates/escape.html": 403,  # symlink out of the folder
        "static": 400,
        "nope.txt": 404,
    }
    for path, status in cases.items():
        r = await admin.get("/admin/api/get-file-content/catalog", params={"path": path})
        assert r.status_code == status, (path, r.status_code, r.text)
        assert "outside secret" not in r.text
    encoded = await admin.get(
        "/admin/api/get-file-content/catalog?path=%2e%2e%2fanalytics%2fmanifest.json"
    )
    assert encoded.status_code == 400
    missing = await admin.get("/admin/api/get-file-content/catalog")
    assert missing.status_code == 422


@pytest.mark.asyncio
async def test_save_manifest_validation(admin: httpx.AsyncClient) -> None:
    url = "/admin/api/save-manifest/catalog"
    r = await admin.post(url, content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = await admin.post(url, json={"nope": 1})
    assert r.status_code == 422 and "content" in r.json()["detail"]
    r = await admin.post(url, json={"content": "{broken"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    r = await admin.post(url, json={"content": json.dumps({"name": "x", "auth_policy": {"x": 1}})})
    assert r.status_code == 422
    assert any(e["field"] == "auth_policy.x" for e in r.json()["errors"])
    r = await admin.post(url, json={"content": json.dumps({"name": "x", "slug": "other"})})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "slug"
    r = await admin.post(
        url, json={"content": json.dumps({"name": "x", "data_scope": ["self", "ghost"]})}
    )
    assert r.status_code == 400 and "ghost" in r.json()["detail"]
    r = await admin.post(
        url, json={"content": json.dumps({"name": "x", "developer_id": "who@example.com"})}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "developer_id"
    r = await admin.post(
        "/admin/api/save-manifest/nofolder", json={"content": json.dumps({"name": "x"})}
    )
    assert r.status_code == 404


@pytest.mark.asyncio
async def test_save_manifest_disables_and_reenables(
    admin: httpx.AsyncClient, admin_app: FastAPI
) -> None:
    base = json.loads(
        (Path(admin_app.state.settings.experiments_dir) / "catalog" / "manifest.json").read_text()
    )
    assert (await admin.get("/experiments/catalog/api/categories")).status_code == 200
    r = await admin.post(
        "/admin/api/save-manifest/catalog",
        json={"content": json.dumps({**base, "status": "inactive"})},
    )
    assert r.status_code == 200 and r.json()["reloaded"] is True and r.json()["registered"] is False
    assert (await admin.get("/experiments/catalog/api/categories")).status_code == 404
    r = await admin.post(
        "/admin/api/save-manifest/catalog",
        json={"content": json.dumps({**base, "name": "Renamed"})},
    )
    assert r.json()["registered"] is True
    assert (await admin.get("/experiments/catalog/api/categories")).status_code == 200
    config = await admin_app.state.db.experiments_config.find_one({"slug": "catalog"})
    assert config["name"] == "Renamed" and "created_at" in config
    # a policy change needs no reload but applies at once (cache invalidated)
    r = await admin.post(
        "/admin/api/save-manifest/catalog",
        json={
            "content": json.dumps({**base, "name": "Renamed", "auth_policy": {"required": True}})
        },
    )
    assert r.json()["reloaded"] is False
    async with client_for(admin_app) as anon:
        assert (await anon.get("/experiments/catalog/api/categories")).status_code == 401


@pytest.mark.asyncio
async def test_reload_index_status_and_stats(admin: httpx.AsyncClient, admin_app: FastAPI) -> None:
    r = await admin.post("/admin/api/reload-experiment/catalog")
    assert r.status_code == 200 and r.json()["registered"] is True
    assert (await admin.post("/admin/api/reload-experiment/nope")).status_code == 404
    await admin_app.state.experiment_service.wait_for_background()
    r = await admin.get("/admin/api/index-status/catalog")
    assert r.status_code == 200
    status = {i["name"]: i["status"] for i in r.json()["indexes"]}
    assert status["catalog_category_price"] == "present"
    assert status["catalog_sku"] == "present"
    backend = admin_app.state.backend
    if "secantus" in str(getattr(backend, "label", "")).lower():
        applied = {i["name"]: i["status"] for i in r.json()["last_apply"]}
        assert applied["catalog_name_text"] == "unsupported"
    assert (await admin.get("/admin/api/index-status/nope")).status_code == 404
    stats = (await admin.get("/admin/api/experiments/stats")).json()
    assert stats["strategies"]["routes"] == "replace"
    assert set(stats["registered"]) >= {"catalog", "click_tracker", "analytics"}
    assert "coalesced" in stats["config_cache"]


@pytest.mark.asyncio
async def test_save_manifest_owner_must_be_a_developer(
    admin: httpx.AsyncClient, admin_app: FastAPI
) -> None:
    await make_user(admin_app, "plain2@example.com")
    await make_user(admin_app, "dev2@example.com", roles=["developer"])
    url = "/admin/api/save-manifest/click_tracker"
    content = {"name": "x", "developer_id": "plain2@example.com"}
    r = await admin.post(url, json={"content": json.dumps(content)})
    assert r.status_code == 422 and "not a developer" in r.json()["detail"]
    content["developer_id"] = "dev2@example.com"
    r = await admin.post(url, json={"content": json.dumps(content)})
    assert r.status_code == 200
    config = await admin_app.state.db.experiments_config.find_one({"slug": "click_tracker"})
    assert config["owner_email"] == "dev2@example.com" and "developer_id" not in config
