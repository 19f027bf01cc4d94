"""The app factory, lifespan, pages, CSRF guard, server entry point."""

from __future__ import annotations

import sys
import time
import types
from typing import ClassVar

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from platform_core import app as app_module
from platform_core.app import PlatformStrategies, create_app
from platform_core.authz.roles import StartupRefused
from platform_core.db.client import DatabaseUnavailable
from platform_core.server import (
    ServerConfigError,
    is_loopback_host,
    run_server,
    settings_to_environment,
)
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, client_for, login, make_user

# --- startup safety -----------------------------------------------------------------------------


def test_production_refuses_default_admin_password(platform_settings: Settings) -> None:
    settings = platform_settings.model_copy(
        update={"environment": "production", "admin_password": "password123"}
    )
    assert settings.default_admin_password
    with pytest.raises(StartupRefused, match="default admin password") as info:
        create_app(settings)
    assert "password123" not in str(info.value)
    with pytest.raises(StartupRefused):
        run_server(settings)


def test_production_refuses_short_admin_password(platform_settings: Settings) -> None:
    settings = platform_settings.model_copy(
        update={"environment": "production", "admin_password": "short-pw"}
    )
    with pytest.raises(StartupRefused, match="at least 12"):
        create_app(settings)


@pytest.mark.asyncio
async def test_unreachable_database_fails_fast_naming_host_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        mongodb_uri="mongodb://alice:s3cr3t-pw@127.0.0.1:9/?directConnection=true",
        data_dir=tmp_path,
        environment="test",
        mongodb_server_selection_timeout_ms=300,
        bcrypt_rounds=4,
    )
    application = create_app(settings)
    started = time.perf_counter()
    with pytest.raises(DatabaseUnavailable) as info:
        async with application.router.lifespan_context(application):
            pass
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert "127.0.0.1:9" in message
    assert "s3cr3t" not in message and "alice" not in message


# --- pages --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_home_lists_only_active_experiments(app: FastAPI, http: httpx.AsyncClient) -> None:
    await app.state.db.experiments_config.insert_many(
        [
            {"slug": "alpha", "name": "Alpha <b>", "status": "active", "description": "first"},
            {"slug": "beta", "name": "Beta", "status": "draft"},
            {"slug": "gamma", "name": "Gamma", "status": "active", "auth_required": True},
        ]
    )
    page = await http.get("/")
    assert page.status_code == 200
    assert "Alpha &lt;b&gt;" in page.text  # escaped
    assert "/experiments/alpha/" in page.text and "/experiments/gamma/" in page.text
    assert "Beta" not in page.text
    assert page.headers["x-db-commands"] == "1"


@pytest.mark.asyncio
async def test_my_experiments_lists_own(app: FastAPI, http: httpx.AsyncClient) -> None:
    await app.state.db.experiments_config.insert_many(
        [
            {"slug": "mine", "name": "Mine", "status": "active", "owner_email": "dev@example.com"},
            {
                "slug": "draft_one",
                "name": "Draft",
                "status": "draft",
                "owner_email": "dev@example.com",
            },
            {
                "slug": "theirs",
                "name": "Theirs",
                "status": "active",
                "owner_email": "x@example.com",
            },
        ]
    )
    await make_user(app, "dev@example.com", roles=["developer"])
    await login(http, "dev@example.com", "user-pass-123")
    page = await http.get("/my-experiments")
    assert page.status_code == 200
    assert "Mine" in page.text and "Draft" in page.text and "Theirs" not in page.text


@pytest.mark.asyncio
async def test_admin_sees_admin_navigation(admin_http: httpx.AsyncClient) -> None:
    page = await admin_http.get("/")
    assert 'href="/admin/users"' in page.text and ADMIN_EMAIL in page.text


@pytest.mark.asyncio
async def test_pages_use_no_external_assets(http: httpx.AsyncClient) -> None:
    for path in ("/", "/auth/login", "/auth/register", "/nope"):
        text = (await http.get(path)).text
        assert "http://" not in text and "https://" not in text, path
        assert "//cdn" not in text


# --- CSRF guard ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_cross_site_writes_are_refused(app: FastAPI, admin_http: httpx.AsyncClient) -> None:
    creds = {"email": ADMIN_EMAIL, "password": "admin-pass-123"}
    async with client_for(app) as client:
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": "http://testserver.evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            r = await client.post("/auth/login", data=creds, headers=headers)
            assert r.status_code == 403, headers
        assert "token" not in client.cookies
        ok = await client.post(
            "/auth/login",
            data=creds,
            headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        )
        assert ok.status_code == 303
        # GETs are never blocked (links from other sites must work).
        assert (await client.get("/", headers={"Sec-Fetch-Site": "cross-site"})).status_code == 200
    r = await admin_http.post(
        "/admin/api/users/create",
        json={"email": "csrf@example.com", "password": "12345678"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and r.json()["status"] == "error"
    assert await app.state.db.users.count_documents({"email": "csrf@example.com"}) == 0


# --- template cache strategy --------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", ["fs_bytecode_cache", "none"])
async def test_template_cache_strategy(platform_settings: Settings, variant: str) -> None:
    application = create_app(
        platform_settings,
        strategies=PlatformStrategies(template_cache=variant),  # type: ignore[arg-type]
    )
    async with application.router.lifespan_context(application):
        try:
            async with client_for(application) as client:
                assert (await client.get("/auth/login")).status_code == 200
        finally:
            await application.state.client.drop_database(platform_settings.mongodb_db)
    cache_dir = platform_settings.data_dir / "jinja_cache"
    if variant == "fs_bytecode_cache":
        assert any(cache_dir.iterdir())
    else:
        assert not cache_dir.exists()


def test_strategies_from_knobs() -> None:
    chosen = PlatformStrategies.from_knobs(
        {"role_checks": "gather", "password_hashing": "inline", "routes": "append"}
    )
    assert chosen == PlatformStrategies(
        template_cache="fs_bytecode_cache", password_hashing="inline", role_checks="gather"
    )


@pytest.mark.asyncio
async def test_inline_hashing_and_role_strategy_still_log_in(platform_settings: Settings) -> None:
    application = create_app(
        platform_settings,
        strategies=PlatformStrategies(password_hashing="inline", role_checks="in_query"),
    )
    async with application.router.lifespan_context(application):
        try:
            async with client_for(application) as client:
                await login(client, ADMIN_EMAIL, "admin-pass-123")
                assert (await client.get("/admin/api/users")).status_code == 200
        finally:
            await application.state.client.drop_database(platform_settings.mongodb_db)


# --- experiments subsystem integration ---------------------------------------------------------


class FakeService:
    instances: ClassVar[list[FakeService]] = []

    def __init__(self, app: FastAPI) -> None:
        assert app.state.db is not None and app.state.authz is not None
        self.app = app
        self.events: list[str] = []
        self.router = APIRouter()

        @self.router.get("/experiments-probe")
        async def probe() -> dict[str, str]:
            return {"ok": "yes"}

        FakeService.instances.append(self)

    async def startup(self) -> None:
        # Admin seeding is done before the service starts.
        assert await self.app.state.authz.has_role_for_user(ADMIN_EMAIL, "admin")
        self.events.append("startup")

    async def shutdown(self) -> None:
        self.events.append("shutdown")


@pytest.mark.asyncio
async def test_experiment_service_is_integrated(
    platform_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType(app_module.EXPERIMENTS_MODULE)
    fake.ExperimentService = FakeService  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, app_module.EXPERIMENTS_MODULE, fake)
    FakeService.instances.clear()
    application = create_app(platform_settings)
    async with application.router.lifespan_context(application):
        try:
            service = application.state.experiment_service
            assert isinstance(service, FakeService) and service.events == ["startup"]
            async with client_for(application) as client:
                assert (await client.get("/experiments-probe")).json() == {"ok": "yes"}
        finally:
            await application.state.client.drop_database(platform_settings.mongodb_db)
    assert service.events == ["startup", "shutdown"]
    assert len(FakeService.instances) == 1


def test_missing_experiment_service_is_skipped_but_broken_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Absent: the package exists without the name (or not at all) → skipped.
    empty = types.ModuleType(app_module.EXPERIMENTS_MODULE)
    monkeypatch.setitem(sys.modules, app_module.EXPERIMENTS_MODULE, empty)
    assert app_module._load_experiment_service_class() is None
    monkeypatch.setitem(sys.modules, app_module.EXPERIMENTS_MODULE, None)  # type: ignore[arg-type]
    assert app_module._load_experiment_service_class() is None

    # Present but failing inside: the error propagates.
    class Broken(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            raise ImportError("No module named 'somedep'", name="somedep")

    monkeypatch.setitem(sys.modules, app_module.EXPERIMENTS_MODULE, Broken("x"))
    with pytest.raises(ImportError, match="somedep"):
        app_module._load_experiment_service_class()


# --- server -------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", ""])
def test_run_server_refuses_non_loopback(platform_settings: Settings, host: str) -> None:
    with pytest.raises(ServerConfigError, match="loopback"):
        run_server(platform_settings, host=host)


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback_host(host), host


def test_settings_travel_through_environment(
    platform_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = settings_to_environment(platform_settings)
    for key in list(env):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        if value is not None:
            monkeypatch.setenv(key, value)
    rebuilt = Settings()
    assert rebuilt.model_dump(exclude={"data_dir"}) == platform_settings.model_dump(
        exclude={"data_dir"}
    )
    assert rebuilt.data_dir.resolve() == platform_settings.data_dir.resolve()
