"""Experiment ZIP uploads and deletes: path safety, ZIP bombs, owner rules (PLATFORM_SPEC 2.15, 8)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from platform_core.experiments.testing import copy_samples, experiment_files, make_zip, started_app
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for, login, make_user


@pytest.fixture
def upload_settings(platform_settings: Settings, tmp_path: Path) -> Settings:
    root = copy_samples(tmp_path / "experiments", ("catalog", "click_tracker"))
    return platform_settings.model_copy(update={"experiments_dir": root, "max_upload_size_mb": 1})


@pytest_asyncio.fixture
async def up_app(upload_settings: Settings) -> AsyncIterator[FastAPI]:
    async with started_app(upload_settings) as app:
        yield app


@pytest_asyncio.fixture
async def admin(up_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(up_app) as client:
        await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        yield client


async def upload(client: httpx.AsyncClient, data: bytes, *, url: str = "/admin/api/upload-experiment",
                 name: str = "exp.zip") -> httpx.Response:  # fmt: skip
    return await client.post(url, files={"file": (name, data, "application/zip")})


def root_snapshot(app: FastAPI) -> list[str]:
    root = Path(app.state.settings.experiments_dir)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.asyncio
async def test_admin_upload_registers_at_once(admin: httpx.AsyncClient, up_app: FastAPI) -> None:
    r = await upload(admin, make_zip(experiment_files("fresh", body="hello")))
    assert r.status_code == 200, r.text
    assert r.json()["slug"] == "fresh" and r.json()["registered"] is True
    assert (await admin.get("/experiments/fresh/")).json() == {"body": "hello"}
    assert (await admin.get("/experiments/fresh/static/style.css")).status_code == 200
    config = await up_app.state.db.experiments_config.find_one({"slug": "fresh"})
    assert config["status"] == "active" and "owner_email" not in config
    # re-upload in the "one folder" layout replaces the code
    r = await upload(admin, make_zip(experiment_files("fresh", prefix="fresh/", body="v2")))
    assert r.status_code == 200
    assert (await admin.get("/experiments/fresh/")).json() == {"body": "v2"}
    assert not [p for p in root_snapshot(up_app) if p.startswith((".upload", ".trash"))]


BAD_MEMBERS = {
    "../evil.py": 400,
    "/abs/evil.py": 400,
    "sub/../../evil.py": 400,
    "..\\evil.py": 400,
    "C:/evil.py": 400,
    "./x.py": 400,
    "static/..": 400,  # (NUL bytes are cut by zipfile itself)
}


@pytest.mark.asyncio
async def test_zip_slip_and_bad_archives_write_nothing(
    admin: httpx.AsyncClient, up_app: FastAPI
) -> None:
    before = root_snapshot(up_app)
    configs = await up_app.state.db.experiments_config.count_documents({})
    for member, status in BAD_MEMBERS.items():
        files = {**experiment_files("evil"), member: "print('pwned')"}
        r = await upload(admin, make_zip(files))
        assert r.status_code == status, (member, r.status_code, r.text)
        assert r.json()["status"] == "error"
    symlinked = make_zip(experiment_files("evil"), symlinks={"static/link": "/etc/passwd"})
    r = await upload(admin, symlinked)
    assert r.status_code == 400 and "symbolic link" in r.json()["detail"]
    for data, status, needle in [
        (b"not a zip at all", 400, "not a valid ZIP"),
        (b"", 400, "empty"),
        (make_zip({"readme.txt": "x"}), 400, "manifest.json"),
        (make_zip({"manifest.json": json.dumps({"slug": "x", "name": "x"})}), 400, "__init__.py"),
        (
            make_zip({**experiment_files("a", prefix="a/"), **experiment_files("b", prefix="b/")}),
            400,
            "several",
        ),
    ]:
        r = await upload(admin, data)
        assert r.status_code == status and needle in r.json()["detail"], r.text
    assert root_snapshot(up_app) == before
    assert await up_app.state.db.experiments_config.count_documents({}) == configs
    assert not list((Path(up_app.state.settings.data_dir) / "uploads").glob("*"))


@pytest.mark.asyncio
async def test_manifest_problems_name_the_field(admin: httpx.AsyncClient, up_app: FastAPI) -> None:
    before = root_snapshot(up_app)
    for manifest, field in [
        ({"slug_id": "../..", "name": "x"}, "slug_id"),
        ({"slug": "../../etc", "name": "x"}, "slug"),
        ({"slug": "Bad-Slug", "name": "x"}, "slug"),
        ({"name": "no slug"}, "slug"),
        ({"slug": "okay", "name": ""}, "name"),
        ({"slug": "okay", "name": "x", "auth_policy": {"bogus": True}}, "auth_policy.bogus"),
        ({"slug": "okay", "name": "x", "data_scope": ["self", "nonexistent"]}, None),
    ]:
        r = await upload(admin, make_zip(experiment_files("okay", manifest=manifest)))
        assert r.status_code in (400, 422), (manifest, r.status_code)
        if field:
            assert field in [e["field"] for e in r.json().get("errors", [])], r.json()
    r = await upload(admin, make_zip({**experiment_files("okay"), "manifest.json": "{oops"}))
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    assert root_snapshot(up_app) == before


@pytest.mark.asyncio
async def test_size_caps_and_zip_bombs(admin: httpx.AsyncClient, up_app: FastAPI) -> None:
    before = root_snapshot(up_app)
    too_big = make_zip(
        {**experiment_files("big"), "static/blob.bin": bytes(range(256)) * 8000},
        compression=zipfile.ZIP_STORED,
    )  # ~2 MB > 1 MB cap
    r = await upload(admin, too_big)
    assert r.status_code == 413
    bomb = make_zip({**experiment_files("bomb"), "static/zeros.bin": b"\0" * (20 * 1024 * 1024)})
    assert len(bomb) < 1024 * 1024
    r = await upload(admin, bomb)
    assert r.status_code == 413 and "ratio" in r.json()["detail"]
    many = make_zip({**experiment_files("many"), **{f"static/f{i}.txt": "x" for i in range(2001)}})
    r = await upload(admin, many)
    assert r.status_code == 413 and "members" in r.json()["detail"]
    # no multipart at all, or no file field
    r = await admin.post(
        "/admin/api/upload-experiment", content=b"x", headers={"content-type": "application/zip"}
    )
    assert r.status_code == 400
    r = await admin.post(
        "/admin/api/upload-experiment", data={"other": "1"}, files={"x": ("a", b"b")}
    )
    assert r.status_code == 422
    assert root_snapshot(up_app) == before


@pytest.mark.asyncio
async def test_owner_rules_for_developers(up_app: FastAPI, admin: httpx.AsyncClient) -> None:
    await make_user(up_app, "dev1@example.com", roles=["developer"])
    await make_user(up_app, "dev2@example.com", roles=["developer"])
    await make_user(up_app, "plain@example.com")
    async with client_for(up_app) as dev1, client_for(up_app) as dev2, \
            client_for(up_app) as plain, client_for(up_app) as anon:  # fmt: skip
        for client, email in ((dev1, "dev1"), (dev2, "dev2"), (plain, "plain")):
            await login(client, f"{email}@example.com", "user-pass-123")
        url = "/api/upload-experiment"
        mine = {
            "slug": "devexp",
            "name": "Dev",
            "status": "active",
            "developer_id": "dev2@example.com",
        }
        r = await upload(dev1, make_zip(experiment_files("devexp", manifest=mine)), url=url)
        assert r.status_code == 200 and r.json()["owner_email"] == "dev1@example.com"
        assert (await dev1.get("/experiments/devexp/")).status_code == 200
        # another developer may not replace it; nobody but admins may replace ownerless ones
        assert (
            await upload(dev2, make_zip(experiment_files("devexp")), url=url)
        ).status_code == 403
        assert (
            await upload(dev1, make_zip(experiment_files("catalog")), url=url)
        ).status_code == 403
        assert (await upload(plain, make_zip(experiment_files("x1")), url=url)).status_code == 403
        assert (await upload(anon, make_zip(experiment_files("x1")), url=url)).status_code == 401
        # data_scope may only list the developer's own experiments
        steal = {"slug": "thief", "name": "T", "data_scope": ["self", "click_tracker"]}
        r = await upload(dev2, make_zip(experiment_files("thief", manifest=steal)), url=url)
        assert r.status_code == 403 and "click_tracker" in r.json()["detail"]
        own_scope = {"slug": "reader", "name": "R", "data_scope": ["self", "devexp"]}
        assert (
            await upload(dev1, make_zip(experiment_files("reader", manifest=own_scope)), url=url)
        ).status_code == 200
        # an admin may replace a developer's experiment; the owner is kept
        r = await upload(admin, make_zip(experiment_files("devexp", body="by admin")))
        assert r.status_code == 200 and r.json()["owner_email"] == "dev1@example.com"

        # deletes: owner or admin only, exact confirmation
        body = {"confirmation": "sudo rm -rf experiments/devexp"}
        assert (
            await dev2.request("DELETE", "/api/delete-experiment/devexp", json=body)
        ).status_code == 403
        assert (
            await anon.request("DELETE", "/api/delete-experiment/devexp", json=body)
        ).status_code == 401
        assert (
            await dev1.request(
                "DELETE",
                "/api/delete-experiment/catalog",
                json={"confirmation": "sudo rm -rf experiments/catalog"},
            )
        ).status_code == 403
        wrong = await dev1.request(
            "DELETE", "/api/delete-experiment/devexp", json={"confirmation": "yes"}
        )
        assert wrong.status_code == 400
        assert (
            await dev1.request("DELETE", "/api/delete-experiment/devexp", json={})
        ).status_code == 422
        assert (
            await dev1.request("DELETE", "/api/delete-experiment/..%2e", json=body)
        ).status_code in (400, 404)
        r = await dev1.request("DELETE", "/api/delete-experiment/devexp", json=body)
        assert r.status_code == 200 and r.json()["folder_deleted"] is True
        assert (await dev1.get("/experiments/devexp/")).status_code == 404
        assert not (Path(up_app.state.settings.experiments_dir) / "devexp").exists()


@pytest.mark.asyncio
async def test_admin_delete_is_exact(admin: httpx.AsyncClient, up_app: FastAPI) -> None:
    db = up_app.state.db
    await upload(admin, make_zip(experiment_files("store")))
    await upload(admin, make_zip(experiment_files("store_factory")))
    await db.store_items.insert_one({"experiment_id": "store", "n": 1})
    await db.store_factory_items.insert_one({"experiment_id": "store_factory", "n": 2})
    await db.store_shared.insert_many([{"experiment_id": "store"}, {"experiment_id": "other"}])
    await db.store_untagged_legacy.insert_one({"x": 1})  # no experiment_id: not provably store's
    r = await admin.request(
        "DELETE",
        "/admin/api/delete-experiment/store",
        json={"confirmation": "sudo rm -rf experiments/store"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["collections"]["store_items"] == "dropped"
    assert "store_factory_items" not in report["collections"]
    assert report["collections"]["store_shared"].startswith("deleted 1")
    names = set(await db.list_collection_names())
    assert "store_items" not in names
    assert {"store_factory_items", "store_shared", "store_untagged_legacy"} <= names
    assert await db.experiments_config.find_one({"slug": "store"}) is None
    assert await db.experiments_config.find_one({"slug": "store_factory"}) is not None
    assert (await admin.get("/experiments/store_factory/")).status_code == 200
    r = await admin.request(
        "DELETE",
        "/admin/api/delete-experiment/store",
        json={"confirmation": "sudo rm -rf experiments/store"},
    )
    assert r.status_code == 404
