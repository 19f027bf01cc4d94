"""GZip (≥ 1000 B, never for already-compressed types) and HSTS (production + https only,
the scheme taken from forwarded headers only for trusted proxies)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from platform_core.app import create_app
from platform_core.edge import GZIP_MINIMUM_SIZE, HSTS_VALUE
from platform_core.experiments.testing import copy_samples, started_app
from platform_core.settings import Settings

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


def raw_client(app: FastAPI, *, base_url: str = "http://testserver", peer: str = "127.0.0.1"):
    """A client that does not decode bodies, so the test sees the bytes on the wire."""
    transport = httpx.ASGITransport(app=app, client=(peer, 4711))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def wire(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> httpx.Response:
    """GET ``path`` keeping the encoded body (``response.wire``)."""
    async with http.stream("GET", path, headers=headers) as response:
        response.wire = b"".join([chunk async for chunk in response.aiter_raw()])  # type: ignore[attr-defined]
    return response


# --- GZip ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_large_html_and_json_are_gzipped(app: FastAPI) -> None:
    async with raw_client(app) as http:
        for path, kind in (("/auth/login", "text/html"), ("/api/openapi.json", "application/json")):
            plain = await wire(http, path, IDENTITY)
            assert "content-encoding" not in plain.headers
            assert len(plain.wire) >= GZIP_MINIMUM_SIZE  # type: ignore[attr-defined]
            packed = await wire(http, path, GZIP)
            assert packed.headers["content-type"].startswith(kind)
            assert packed.headers["content-encoding"] == "gzip"
            assert "accept-encoding" in packed.headers["vary"].lower()
            body = packed.wire  # type: ignore[attr-defined]
            assert int(packed.headers["content-length"]) == len(body) < len(plain.wire) / 2  # type: ignore[attr-defined]
            if kind == "application/json":  # the page embeds a fresh request id; JSON is stable
                assert gzip.decompress(body) == plain.wire  # type: ignore[attr-defined]
            # Request ids and the other headers of inner layers survive compression.
            assert packed.headers["x-request-id"]


@pytest.mark.asyncio
async def test_small_responses_are_not_gzipped(app: FastAPI) -> None:
    async with raw_client(app) as http:
        small = await wire(http, "/api/nope", GZIP)
        assert small.status_code == 404 and "content-encoding" not in small.headers
        assert len(small.wire) < GZIP_MINIMUM_SIZE  # type: ignore[attr-defined]
        assert json.loads(small.wire)["status"] == "error"  # type: ignore[attr-defined]


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.txt", "hello " * 2000)
        zf.writestr("noise.bin", os.urandom(2000))
    return buffer.getvalue()


@pytest.fixture
def static_settings(platform_settings: Settings, tmp_path: Path) -> Settings:
    root = copy_samples(tmp_path / "experiments", ("catalog",))
    static = root / "catalog" / "static"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 4000  # compressible bytes: only the type says no
    (static / "logo.png").write_bytes(png)
    (static / "bundle.zip").write_bytes(_zip_bytes())
    (static / "font.woff2").write_bytes(b"wOF2" + b"\x00" * 4000)
    (static / "big.css").write_text("body { color: black; }\n" * 200)
    (static / "icon.svg").write_text(
        "<svg xmlns='http://www.w3.org/2000/svg'>" + "<g/>" * 500 + "</svg>"
    )
    return platform_settings.model_copy(update={"experiments_dir": root})


@pytest.mark.asyncio
async def test_compressed_types_are_not_recompressed(static_settings: Settings) -> None:
    base = "/experiments/catalog/static/"
    static = static_settings.experiments_dir / "catalog" / "static"  # type: ignore[operator]
    async with started_app(static_settings) as app, raw_client(app) as http:
        for name, kind in (("logo.png", "image/png"), ("bundle.zip", "application/zip"),
                           ("font.woff2", "font/woff2")):  # fmt: skip
            r = await wire(http, base + name, GZIP)
            assert r.status_code == 200 and r.headers["content-type"] == kind
            assert "content-encoding" not in r.headers
            assert r.wire == (static / name).read_bytes()  # type: ignore[attr-defined]
        # Text assets (SVG is text too) are compressed.
        for name in ("big.css", "icon.svg"):
            r = await wire(http, base + name, GZIP)
            assert r.headers["content-encoding"] == "gzip", name
            assert gzip.decompress(r.wire) == (static / name).read_bytes()  # type: ignore[attr-defined]


# --- HSTS ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(settings: Settings, **update: object) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update=update))
    async with app.router.lifespan_context(app):
        try:
            yield app
        finally:
            await app.state.client.drop_database(settings.mongodb_db)


async def hsts(app: FastAPI, path: str = "/auth/login", *, https: bool, peer: str = "127.0.0.1",
               **headers: str) -> str | None:  # fmt: skip
    base = "https://testserver" if https else "http://testserver"
    async with raw_client(app, base_url=base, peer=peer) as http:
        response = await http.get(
            path, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
    return response.headers.get("strict-transport-security")


@pytest.mark.asyncio
async def test_hsts_only_in_production_over_https(platform_settings: Settings) -> None:
    async with running(platform_settings, environment="production") as app:
        for path in ("/auth/login", "/healthz", "/nope", "/api/nope"):
            assert await hsts(app, path, https=True) == HSTS_VALUE, path
        assert await hsts(app, https=False) is None
        # No trusted proxies: a client cannot claim https.
        assert await hsts(app, https=False, X_Forwarded_Proto="https") is None
        assert await hsts(app, https=False, peer="10.1.2.3", X_Forwarded_Proto="https") is None
    async with running(platform_settings, environment="development") as app:
        assert await hsts(app, https=True) is None


@pytest.mark.asyncio
async def test_hsts_behind_a_trusted_proxy(platform_settings: Settings) -> None:
    async with running(
        platform_settings, environment="production", trusted_proxies=["10.0.0.0/8"]
    ) as app:
        proxy = "10.1.2.3"
        assert await hsts(app, https=False, peer=proxy, X_Forwarded_Proto="https") == HSTS_VALUE
        assert await hsts(app, https=False, peer=proxy, X_Forwarded_Proto="http") is None
        assert await hsts(app, https=False, peer=proxy) is None
        # The proxy's own (last) value wins over one the client sent along.
        assert await hsts(app, https=False, peer=proxy, X_Forwarded_Proto="https, http") is None
        # Anyone else still cannot claim https.
        assert await hsts(app, https=False, peer="192.0.2.1", X_Forwarded_Proto="https") is None


@pytest.mark.asyncio
async def test_gzip_and_hsts_together(platform_settings: Settings) -> None:
    async with running(platform_settings, environment="production") as app:
        async with raw_client(app, base_url="https://testserver") as http:
            r = await http.get("/auth/login", headers=GZIP)
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["strict-transport-security"] == HSTS_VALUE
        assert "<form" in r.text
