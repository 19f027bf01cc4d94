"""Experiment export: exact collections, rewritten HTML, logs, download, invalidation, cleanup."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from platform_core.experiments.testing import copy_samples, experiment_files, started_app
from platform_core.export.builder import rewrite_static_refs
from platform_core.export.manager import sweep_exports
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for, login


def write_experiment(root: Path, slug: str, body: str = "ok") -> None:
    for name, content in experiment_files(slug, body=body).items():
        path = root / slug / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.fixture
def export_settings(platform_settings: Settings, tmp_path: Path) -> Settings:
    root = copy_samples(tmp_path / "experiments", ("catalog",))
    write_experiment(root, "store")
    write_experiment(root, "store_factory")
    return platform_settings.model_copy(update={"experiments_dir": root})


@pytest_asyncio.fixture(params=["thread", "on_loop"])
async def export_app(
    request: pytest.FixtureRequest, export_settings: Settings
) -> AsyncIterator[FastAPI]:
    async with started_app(export_settings, export_build_strategy=request.param,
                           export_cleanup_strategy=request.param) as app:  # fmt: skip
        yield app


@pytest_asyncio.fixture
async def admin(export_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(export_app) as client:
        await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        yield client


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.mark.asyncio
async def test_export_contents_are_exact(admin: httpx.AsyncClient, export_app: FastAPI) -> None:
    db = export_app.state.db
    await db.store_items.insert_many([{"experiment_id": "store", "n": i} for i in range(3)])
    await db.store_factory_items.insert_one({"experiment_id": "store_factory", "n": 99})
    # left over by a deleted experiment "store_zombie" (no config, no folder any more): the
    # name alone would make it store's, its documents say otherwise (rule 2)
    await db.store_zombie_items.insert_one({"experiment_id": "store_zombie"})
    await db.store_mixed.insert_many([{"experiment_id": "store", "n": 7}, {"experiment_id": "x"}])
    r = await admin.post("/admin/api/export/store")
    assert r.status_code == 200, r.text
    info = r.json()
    assert set(info["collections"]) == {"store_items", "store_mixed"}
    assert info["collections"]["store_mixed"] == 1  # only the experiment's own documents
    download = await admin.get(info["download_url"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    files = read_zip(download.content)
    assert {"manifest.json", "__init__.py", "actor.py", "templates/index.html",
            "static/style.css", "README.md", "db_config.json", "db_collections.json"} <= set(files)  # fmt: skip
    assert b'href="/experiments/store/static/style.css"' in files["templates/index.html"]
    dumped = json.loads(files["db_collections.json"])
    assert set(dumped) == {"store_items", "store_mixed"}
    assert all(d["experiment_id"] == "store" for docs in dumped.values() for d in docs)
    assert json.loads(files["db_config.json"])["slug"] == "store"
    assert "store_items" in files["README.md"].decode()
    # the log entry
    logs = (await admin.get("/admin/api/exports", params={"slug_id": "store"})).json()["exports"]
    assert len(logs) == 1 and logs[0]["checksum"] == info["checksum"]
    assert logs[0]["local_file_path"] == info["filename"]  # a basename, never a path


@pytest.mark.asyncio
async def test_package_download_and_invalidation(
    admin: httpx.AsyncClient, export_app: FastAPI
) -> None:
    r = await admin.get("/admin/package/catalog")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    files = read_zip(r.content)
    assert b"/experiments/catalog/static/style.css" in files["templates/index.html"]
    # the export is upload-ready: uploading it again works (db_*.json are not extracted)
    again = await admin.post("/admin/api/upload-experiment",
                             files={"file": ("catalog.zip", r.content, "application/zip")})  # fmt: skip
    assert again.status_code == 200 and again.json()["registered"] is True
    folder = Path(export_app.state.settings.experiments_dir) / "catalog"
    assert not (folder / "db_collections.json").exists()
    export_id = r.headers["x-export-id"]
    url = f"/admin/api/exports/{export_id}/download"
    assert (await admin.get(url)).content == r.content
    async with client_for(export_app) as anon:
        assert (await anon.get(url)).status_code == 401
        assert (await anon.post(f"/admin/api/exports/{export_id}/invalidate")).status_code == 401
    inv = await admin.post(f"/admin/api/exports/{export_id}/invalidate", json={"delete_file": True})
    assert inv.status_code == 200 and inv.json()["file_deleted"] is True
    assert (await admin.get(url)).status_code == 410
    assert (await admin.get("/admin/api/exports/not-an-id/download")).status_code == 400
    assert (
        await admin.get("/admin/api/exports/0123456789abcdef01234567/download")
    ).status_code == 404
    assert (await admin.post("/admin/api/exports/zzz/invalidate")).status_code == 400
    assert (await admin.post("/admin/api/export/nope")).status_code == 404
    assert (await admin.get("/admin/api/exports", params={"slug_id": "../x"})).status_code == 400


@pytest.mark.asyncio
async def test_cleanup_removes_old_files_and_marks_logs(
    admin: httpx.AsyncClient, export_app: FastAPI
) -> None:
    service = export_app.state.experiment_service
    info = (await admin.post("/admin/api/export/catalog")).json()
    path = service.exports.exports_dir / info["filename"]
    fresh = (await admin.post("/admin/api/export/catalog")).json()
    old = time.time() - 2 * service.exports.retention_seconds
    os.utime(path, (old, old))
    removed = await service.exports.cleanup()
    assert removed == [info["filename"]]
    assert not path.exists() and (service.exports.exports_dir / fresh["filename"]).exists()
    log = await export_app.state.db.export_logs.find_one({"file_name": info["filename"]})
    assert log["file_deleted"] is True
    assert (await admin.get(info["download_url"])).status_code == 404


def test_sweep_and_rewrite_helpers(tmp_path: Path) -> None:
    for name, age in (
        ("a-1.zip", 10),
        ("b-2.zip", 100_000),
        (".c.zip.part", 100_000),
        ("keep.txt", 100_000),
    ):
        p = tmp_path / name
        p.write_text("x")
        os.utime(p, (time.time() - age, time.time() - age))
    assert sorted(sweep_exports(tmp_path, 3600)) == [".c.zip.part", "b-2.zip"]
    assert sweep_exports(tmp_path / "missing", 1) == []
    html = '<link href="static/a.css"><script src=\'./static/b.js\'></script><img src="/static/x">'
    out = rewrite_static_refs(html, "shop")
    assert 'href="/experiments/shop/static/a.css"' in out
    assert "src='/experiments/shop/static/b.js'" in out
    assert 'src="/static/x"' in out  # absolute platform paths untouched
