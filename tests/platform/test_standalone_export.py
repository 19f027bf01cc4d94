"""The standalone app inside export ZIPs (spec 2.16 / 9).

The smoke test extracts a real export and runs its ``main.py`` in a subprocess against the
test MongoDB, with the real ``platform_core`` made unimportable, so the app must live on
what the ZIP vendors.
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from platform_core.experiments.manifest import validate_manifest
from platform_core.experiments.testing import copy_samples
from platform_core.export import standalone_runtime as rt
from platform_core.export.builder import build_in_memory, readme_text
from platform_core.export.collections import to_json
from platform_core.export.standalone import GENERATED, merged_requirements

GENERATED_FILES = {"main.py", "standalone_runtime.py", "requirements.txt", "Dockerfile",
                   "docker-compose.yml", "db_config.json", "db_collections.json"}  # fmt: skip


def export_zip(tmp_path: Path, slug: str, docs: dict[str, list[dict[str, Any]]] | None = None,
               extra_files: dict[str, str] | None = None) -> dict[str, bytes]:  # fmt: skip
    """Build the export ZIP of a sample experiment with the platform's builder."""
    root = copy_samples(tmp_path / "experiments", (slug,))
    folder = root / slug
    for name, text in (extra_files or {}).items():
        (folder / name).write_text(text)
    manifest = json.loads((folder / "manifest.json").read_text())
    config = validate_manifest(manifest).to_config()
    counts = {name: len(d) for name, d in (docs or {}).items()}
    built = build_in_memory(folder, slug, to_json(config), to_json(docs or {}),
                            readme_text(slug, config, counts))  # fmt: skip
    assert built.data is not None
    with zipfile.ZipFile(io.BytesIO(built.data)) as zf:
        names = zf.namelist()
        assert len(names) == len(set(names)), "duplicate ZIP entries"
        return {name: zf.read(name) for name in names}


def test_zip_holds_the_standalone_app(tmp_path: Path) -> None:
    files = export_zip(tmp_path, "catalog", extra_files={
        "requirements.txt": "# mine\nFastAPI==0.115.0\nnumpy>=1.26\n",
        "main.py": "print('the experiment had its own main.py')\n",
    })  # fmt: skip
    assert GENERATED_FILES <= set(files)
    assert {"manifest.json", "__init__.py", "actor.py", "templates/index.html"} <= set(files)
    for name in ("main.py", "standalone_runtime.py"):
        compile(files[name], name, "exec")  # valid Python
    main = files["main.py"].decode()
    assert "SLUG = 'catalog'" in main
    assert "os.environ.get(\"MONGODB_DB\", 'catalog_standalone')" in main
    # the experiment's pins win, base requirements it does not list are added once
    reqs = files["requirements.txt"].decode().splitlines()
    assert "FastAPI==0.115.0" in reqs and "numpy>=1.26" in reqs
    assert not any(r.startswith("fastapi>=") for r in reqs)
    for base in ("uvicorn", "pymongo", "jinja2"):
        assert sum(r.startswith(base) for r in reqs) == 1
    # Docker: slim 3.11, non-root user, the app on uvicorn
    docker = files["Dockerfile"].decode()
    assert docker.splitlines()[1] == "FROM python:3.11-slim"
    users = [line for line in docker.splitlines() if line.startswith("USER ")]
    assert users and users[-1] != "USER root" and "useradd" in docker
    assert 'CMD ["uvicorn", "main:app"' in docker
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load(files["docker-compose.yml"])
    assert set(compose["services"]) == {"mongo", "app"}
    assert compose["services"]["mongo"]["image"].startswith("mongo:")  # no search indexes
    assert compose["services"]["app"]["ports"] == ["127.0.0.1:8000:8000"]
    assert compose["services"]["app"]["environment"]["MONGODB_URI"].startswith("mongodb://mongo")
    readme = files["README.md"].decode()
    assert "## Run it standalone" in readme and "`main.py`" in readme.split("Replaced")[-1]
    assert files["main.py"] != b"print('the experiment had its own main.py')\n"


def test_runtime_imports_nothing_from_the_platform() -> None:
    tree = ast.parse(Path(rt.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not [m for m in imported if m.split(".")[0] == "platform_core"], imported
    assert set(GENERATED) == {"main.py", "standalone_runtime.py", "requirements.txt",
                              "Dockerfile", "docker-compose.yml"}  # fmt: skip


def test_requirements_merge_without_experiment_file() -> None:
    text = merged_requirements("")
    assert text.startswith("# The standalone app")
    assert [line.split(">=")[0] for line in text.splitlines()[1:]] == [
        "fastapi", "uvicorn", "pymongo", "jinja2", "python-multipart"]  # fmt: skip


@pytest.mark.asyncio
async def test_vendored_scoping_matches_the_platform(db: Any) -> None:
    await db.other_items.insert_one({"experiment_id": "other", "n": 1})
    await db.shop_items.insert_one({"experiment_id": "intruder", "n": 2})
    shop = rt.ScopedDatabase(db, ["shop", "other"], "shop")
    await shop.items.insert_one({"n": 3})
    assert [d["n"] async for d in shop.items.find({}, {"_id": 0})] == [3]
    assert (await db.shop_items.find_one({"n": 3}))["experiment_id"] == "shop"
    assert await shop.collection("items", owner="other").count_documents({}) == 1
    with pytest.raises(rt.ScopeViolation):
        await shop.collection("items", owner="other").delete_many({})
    with pytest.raises(rt.ScopeViolation):
        await shop.items.update_one({}, {"$set": {"experiment_id": "other"}})
    with pytest.raises(rt.ScopeViolation):
        await shop.items.insert_one({"experiment_id": "other"})
    with pytest.raises(rt.ScopeViolation):
        await shop.items.aggregate([{"$lookup": {"from": "other_items", "as": "x",
                                                 "pipeline": []}}])  # fmt: skip
    with pytest.raises(rt.ScopeViolation):
        await shop.items.find_one({"$where": "true"})
    with pytest.raises(rt.ScopeViolation):
        rt.ScopedDatabase(db, ["shop"], "shop").collection("items", owner="other")
    result = await shop.items.update_many({}, {"$inc": {"n": 1}})
    assert result.modified_count == 1  # not the intruder's document
    await shop.items.update_one({"n": 99}, {"$set": {"k": 1}}, upsert=True)
    assert (await db.shop_items.find_one({"n": 99}))["experiment_id"] == "shop"


SMOKE = r"""
import importlib.abc, json, os, sys

class BlockPlatform(importlib.abc.MetaPathFinder):
    # The real platform_core must not be needed: only the vendored stand-ins may exist.
    def find_spec(self, name, path, target=None):
        if name == "platform_core" or name.startswith("platform_core."):
            raise ModuleNotFoundError(f"{name} imported by the standalone app", name=name)
        return None

sys.meta_path.insert(0, BlockPlatform())
os.chdir(sys.argv[1])
sys.path.insert(0, sys.argv[1])
import main
from fastapi.testclient import TestClient

out = {}
with TestClient(main.app) as client:
    root = client.get("/", follow_redirects=False)
    out["root"] = [root.status_code, root.headers.get("location")]
    page = client.get("/")
    out["page"] = [page.status_code, "Click tracker" in page.text, "seeded-page" in page.text]
    css = client.get("/experiments/click_tracker/static/style.css")
    out["static"] = [css.status_code, "Click tracker" in css.text]
    out["click"] = client.post("/experiments/click_tracker/api/click",
                               json={"page": "standalone"}).status_code
    out["count"] = client.get("/experiments/click_tracker/api/count").json()
    out["debug1"] = client.get("/_debug/db").json()
with TestClient(main.app) as client:  # a restart: seeding must not duplicate anything
    out["debug2"] = client.get("/_debug/db").json()
out["platform_modules"] = sorted(
    name for name, module in sys.modules.items()
    if name.split(".")[0] == "platform_core" and getattr(module, "__file__", None))
print("RESULT " + json.dumps(out))
"""


def test_generated_app_runs_standalone(tmp_path: Path, mongodb_uri: str, db_name: str) -> None:
    slug = "click_tracker"
    seeded = [{"_id": ObjectId(), "experiment_id": slug, "page": "seeded-page",
               "element": "b", "ts": datetime.now(UTC)} for _ in range(3)]  # fmt: skip
    files = export_zip(tmp_path, slug, {f"{slug}_clicks": seeded})
    app_dir = tmp_path / "standalone"
    for name, data in files.items():
        path = app_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    env = {**os.environ, "MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name,
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SMOKE), str(app_dir)],
                              cwd=app_dir, env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
    finally:
        _drop(mongodb_uri, db_name)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    assert out["root"] == [307, f"/experiments/{slug}/"]
    assert out["page"] == [200, True, True]  # the seeded clicks are on the page
    assert out["static"] == [200, True]
    assert out["click"] == 201
    assert out["count"] == {"clicks": 4}  # through the in-process actor
    first, second = out["debug1"], out["debug2"]
    clicks = f"{slug}_clicks"
    assert first["collections"][clicks]["documents"] == 4
    assert f"{slug}_page_ts" in first["collections"][clicks]["indexes"]
    assert first["seed"]["collections"][clicks] == {"documents": 3, "inserted": 3}
    assert first["seed"]["config"] is True
    assert {i["name"]: i["status"] for i in first["managed_indexes"]}[
        f"{slug}_page_ts"
    ] == "created"
    assert second["seed"]["collections"][clicks] == {"documents": 3, "inserted": 0}
    assert second["seed"]["config"] is False
    assert second["collections"][clicks]["documents"] == 4
    assert second["collections"]["experiments_config"]["documents"] == 1
    assert out["platform_modules"] == []  # only the vendored stand-ins were used


def _drop(uri: str, name: str) -> None:
    from pymongo import MongoClient

    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(name)
