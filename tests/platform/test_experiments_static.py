"""Experiment static files: cache headers per knob variant (report 7.2) and path safety."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from platform_core.experiments.testing import copy_samples, started_app
from platform_core.settings import Settings
from tests.platform.conftest import client_for

CSS = "/experiments/catalog/static/style.css"


@pytest.fixture
def static_settings(platform_settings: Settings, tmp_path: Path) -> Settings:
    root = copy_samples(tmp_path / "experiments", ("catalog",))
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, root / "catalog" / "static" / "leak.txt")
    (root / "catalog" / "static" / ".hidden").write_text("hidden")
    (root / "catalog" / "static" / "sub").mkdir()
    return platform_settings.model_copy(update={"experiments_dir": root})


@pytest.mark.asyncio
@pytest.mark.parametrize("strategy", ["cached", "plain"])
async def test_cache_headers_and_conditional_requests(
    static_settings: Settings, strategy: str
) -> None:
    async with (
        started_app(static_settings, static_strategy=strategy) as app,
        client_for(app) as http,
    ):
        first = await http.get(CSS)
        assert first.status_code == 200 and "catalog" in first.text.lower()
        assert first.headers["content-type"].startswith("text/css")
        etag = first.headers["etag"]
        assert first.headers["last-modified"]
        if strategy == "cached":
            assert first.headers["cache-control"] == "public, max-age=3600"
            versioned = await http.get(CSS + "?v=abc")
            assert "immutable" in versioned.headers["cache-control"]
        else:
            assert "cache-control" not in first.headers
        again = await http.get(CSS, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        since = await http.get(CSS, headers={"If-Modified-Since": first.headers["last-modified"]})
        assert since.status_code == 304
        head = await http.head(CSS)
        assert head.status_code == 200 and head.content == b""


@pytest.mark.asyncio
async def test_path_safety(static_settings: Settings) -> None:
    async with started_app(static_settings) as app, client_for(app) as http:
        cases = {
            "/experiments/catalog/static/%2e%2e/manifest.json": 400,
            "/experiments/catalog/static/..%2f__init__.py": 400,
            "/experiments/catalog/static/%2e%2e%2f%2e%2e%2fsecret.txt": 400,
            "/experiments/catalog/static/%5c..%5cmanifest.json": 400,
            "/experiments/catalog/static//etc/passwd": 400,
            "/experiments/catalog/static/C:%5cwindows": 400,
            "/experiments/catalog/static/leak.txt": 404,  # symlink leaving the folder
            "/experiments/catalog/static/.hidden": 404,
            "/experiments/catalog/static/sub": 404,  # a directory
            "/experiments/catalog/static/missing.css": 404,
            "/experiments/catalog/static/": 400,
            "/experiments/unknown/static/style.css": 404,
            "/experiments/CATALOG/static/style.css": 404,
            "/experiments/../catalog/static/style.css": 404,
        }
        for path, status in cases.items():
            r = await http.get(path)
            assert r.status_code == status, (path, r.status_code, r.text[:200])
            assert "top secret" not in r.text
        assert (await http.post(CSS)).status_code == 405
