"""Fixtures for platform (web app) tests, shared with the experiments subsystem's tests.

Each test gets a fresh app on its own database (``db_name``) with the lifespan running
(``httpx.ASGITransport`` does not run it), an HTTP client, and helpers to log in and to
create users with roles. bcrypt runs at 4 rounds so logins cost ~1 ms.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from platform_core.app import create_app
from platform_core.auth.users import create_user
from platform_core.settings import Settings

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-pass-123"
BASE_URL = "http://testserver"


@pytest.fixture
def platform_settings(tmp_path: Path, mongodb_uri: str, db_name: str) -> Settings:
    return Settings(
        mongodb_uri=mongodb_uri,
        mongodb_db=db_name,
        data_dir=tmp_path / "data",
        environment="test",
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        bcrypt_rounds=4,
        mongodb_server_selection_timeout_ms=2000,
        # Tests log in many times from one address; test_rate_limits.py turns them on.
        rate_limits_enabled=False,
    )


@pytest_asyncio.fixture(loop_scope="function")
async def app(platform_settings: Settings) -> AsyncIterator[FastAPI]:
    """A started app (lifespan entered); its database is dropped afterwards."""
    application = create_app(platform_settings)
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            await application.state.client.drop_database(platform_settings.mongodb_db)


def client_for(application: FastAPI, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url=BASE_URL, **kwargs
    )


@pytest_asyncio.fixture(loop_scope="function")
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


async def login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    """Log ``http`` in (the cookie stays on the client); asserts success."""
    response = await http.post(
        "/auth/login", data={"email": email, "password": password, "next": "/"}
    )
    assert response.status_code == 303, (response.status_code, response.text[:300])
    assert "token" in http.cookies
    return response


@pytest_asyncio.fixture(loop_scope="function")
async def admin_http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second client, logged in as the seeded admin."""
    async with client_for(app) as client:
        await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        yield client


async def make_user(
    app: FastAPI,
    email: str,
    password: str = "user-pass-123",
    roles: Sequence[str] = (),
    *,
    is_admin: bool = False,
) -> dict[str, object]:
    """Create an account directly (no HTTP) and grant ``roles`` through the authz provider."""
    doc = await create_user(
        app.state.db, app.state.password_hasher, email, password, is_admin=is_admin
    )
    for role in roles:
        await app.state.authz.add_role_for_user(doc["email"], role)
    return doc


@contextlib.asynccontextmanager
async def user_client(
    app: FastAPI, email: str, password: str = "user-pass-123", roles: Sequence[str] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    """``async with user_client(app, email, roles=[...]) as client``: a new logged-in user."""
    await make_user(app, email, password, roles)
    async with client_for(app) as client:
        await login(client, email, password)
        yield client
