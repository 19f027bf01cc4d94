"""Rate limits (PLATFORM_SPEC 2.19) keyed by client address, proxy headers trusted only
from TRUSTED_PROXIES (8.10). A fake clock replaces waiting: no test sleeps."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from platform_core.app import create_app
from platform_core.proxies import TrustedProxies, parse_trusted_proxies
from platform_core.ratelimit import DEFAULT_LIMITS, Rate, RateLimit, RateLimiter, client_key
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, BASE_URL, client_for, login


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- the limiter itself -----------------------------------------------------------------------


def test_rate_parsing() -> None:
    assert Rate.parse("5/minute") == Rate(5, 60.0)
    assert Rate.parse("100 / hours") == Rate(100, 3600.0)
    assert Rate.parse("3/10 seconds") == Rate(3, 10.0)
    for bad in ("", "5", "0/minute", "5/fortnight", "-1/second", "five/minute"):
        with pytest.raises(ValueError):
            Rate.parse(bad)
    assert set(DEFAULT_LIMITS) == {
        "login_post", "login_page", "register_post", "register_page",
        "export", "export_download", "admin_package",
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown rate limit"):
        RateLimit("login")


def test_burst_refill_and_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"login_post": "5/minute"}, clock=clock)
    decisions = [limiter.hit("login_post", "1.2.3.4") for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = limiter.hit("login_post", "1.2.3.4")
    assert not refused.allowed and refused.retry_after == pytest.approx(12.0)
    # Refused requests use up nothing: still exactly 12 s to wait.
    for _ in range(10):
        assert not limiter.hit("login_post", "1.2.3.4").allowed
    clock.advance(11.9)
    assert limiter.hit("login_post", "1.2.3.4").retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert limiter.hit("login_post", "1.2.3.4").allowed  # one token back
    assert not limiter.hit("login_post", "1.2.3.4").allowed
    clock.advance(60)
    assert all(limiter.hit("login_post", "1.2.3.4").allowed for _ in range(5))
    assert limiter.refused == 13


def test_keys_are_per_client_and_per_limit() -> None:
    limiter = RateLimiter(clock=FakeClock())
    for _ in range(3):
        assert limiter.hit("register_post", "10.0.0.1").allowed
    assert not limiter.hit("register_post", "10.0.0.1").allowed
    assert limiter.hit("register_post", "10.0.0.2").allowed
    assert limiter.hit("register_page", "10.0.0.1").allowed


def test_odd_rates_allow_the_full_burst() -> None:
    limiter = RateLimiter({"x": "7/minute"}, clock=FakeClock(0.1))
    assert [limiter.hit("x", "c").allowed for _ in range(8)] == [True] * 7 + [False]


def test_disabled_limiter_allows_everything() -> None:
    limiter = RateLimiter(enabled=False, clock=FakeClock())
    assert all(limiter.hit("register_post", "c").allowed for _ in range(100))
    assert len(limiter) == 0


def test_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, max_keys=50)
    for i in range(500):
        limiter.hit("login_post", f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 50 and limiter.evicted == 450
    # Idle keys whose bucket has refilled are dropped on the next hit.
    clock.advance(60)
    limiter.hit("login_post", "192.0.2.1")
    assert len(limiter) == 1
    assert limiter.stats()["keys"] == 1


def _request(host: str | None) -> object:
    class Client:
        def __init__(self, h: str) -> None:
            self.host = h

    class Req:
        client = Client(host) if host is not None else None

    return Req()


def test_client_keys() -> None:
    assert client_key(_request("203.0.113.7")) == "203.0.113.7"  # type: ignore[arg-type]
    # One IPv6 host owns its /64: rotating addresses inside it does not help.
    a = client_key(_request("2001:db8:1:2::1"))  # type: ignore[arg-type]
    b = client_key(_request("2001:db8:1:2:ffff::9"))  # type: ignore[arg-type]
    assert a == b == "2001:db8:1:2::/64"
    assert client_key(_request("::ffff:192.0.2.5")) == "192.0.2.5"  # type: ignore[arg-type]
    assert client_key(_request(None)) == "unknown"  # type: ignore[arg-type]


def test_trusted_proxy_resolution() -> None:
    assert parse_trusted_proxies("10.0.0.1, 192.168.0.0/16") == ["10.0.0.1/32", "192.168.0.0/16"]
    assert parse_trusted_proxies('["::1"]') == ["::1/128"]
    with pytest.raises(ValueError):
        parse_trusted_proxies("example.com")
    trusted = TrustedProxies(["10.0.0.0/8"])
    assert trusted.contains("10.9.8.7") and not trusted.contains("11.0.0.1")
    assert trusted.contains("::ffff:10.0.0.1") and not trusted.contains("garbage")
    # The first untrusted hop from the right is the client; what it wrote is ignored.
    assert trusted.client_from("10.0.0.2", "203.0.113.7") == "203.0.113.7"
    assert trusted.client_from("10.0.0.2", "1.1.1.1, 203.0.113.7, 10.0.0.3") == "203.0.113.7"
    assert trusted.client_from("10.0.0.2", "10.0.0.5, 10.0.0.3") == "10.0.0.5"
    assert trusted.client_from("10.0.0.2", "203.0.113.7, garbage") == "10.0.0.2"
    assert trusted.client_from("10.0.0.2", "[2001:db8::1]:4711") == "2001:db8::1"
    assert not TrustedProxies()


# --- the routes -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def limited_app(settings: Settings, **update: object) -> AsyncIterator[FastAPI]:
    """An app with rate limits on and a fake clock (``app.state.rate_limiter.clock``)."""
    app = create_app(settings.model_copy(update={"rate_limits_enabled": True, **update}))
    app.state.rate_limiter.clock = FakeClock()
    async with app.router.lifespan_context(app):
        try:
            yield app
        finally:
            await app.state.client.drop_database(settings.mongodb_db)


def peer_client(app: FastAPI, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 4711))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


async def _failed_login(http: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await http.post(
        "/auth/login", data={"email": ADMIN_EMAIL, "password": "wrong-password"}, headers=headers
    )


@pytest.mark.asyncio
async def test_login_post_limit_html_429(platform_settings: Settings) -> None:
    async with limited_app(platform_settings) as app, client_for(app) as http:
        for _ in range(5):
            assert (await _failed_login(http)).status_code == 401
        refused = await http.post(
            "/auth/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )  # even the right password: the check runs before bcrypt
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "12"
        assert refused.headers["content-type"].startswith("text/html")
        assert "429" in refused.text and "token" not in http.cookies
        app.state.rate_limiter.clock.advance(12)
        await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.mark.asyncio
async def test_page_and_register_limits(platform_settings: Settings) -> None:
    async with limited_app(platform_settings) as app, client_for(app) as http:
        for _ in range(20):
            assert (await http.get("/auth/login")).status_code == 200
        assert (await http.get("/auth/login")).status_code == 429
        for _ in range(20):
            assert (await http.get("/auth/register")).status_code == 200
        assert (await http.get("/auth/register")).status_code == 429
        for i in range(3):
            r = await http.post("/auth/register", data={"email": f"u{i}@example.com",
                                                        "password": "short"})  # fmt: skip
            assert r.status_code == 400
        r = await http.post("/auth/register", data={"email": "u9@example.com", "password": "x"})
        assert r.status_code == 429 and r.headers["retry-after"] == "20"
        # Limits are per route: logging in still works.
        await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.mark.asyncio
async def test_export_limits_json_on_admin_api(platform_settings: Settings) -> None:
    async with limited_app(platform_settings) as app, client_for(app) as admin:
        await login(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
        # Unknown slugs and ids: the handler answers 404, but every call is counted.
        for _ in range(10):
            assert (await admin.post("/admin/api/export/nope")).status_code == 404
        r = await admin.post("/admin/api/export/nope")
        assert r.status_code == 429 and r.headers["retry-after"] == "6"
        assert r.json()["status"] == "error" and "Too many requests" in r.json()["detail"]
        for _ in range(30):
            r = await admin.get("/admin/api/exports/0123456789abcdef01234567/download")
            assert r.status_code in (400, 404)
        r = await admin.get("/admin/api/exports/0123456789abcdef01234567/download")
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert r.json() == {"detail": r.json()["detail"], "status": "error"}
        # /admin/package is a page (a download link): HTML 429.
        for _ in range(20):
            assert (await admin.get("/admin/package/nope")).status_code == 404
        r = await admin.get("/admin/package/nope")
        assert r.status_code == 429 and r.headers["content-type"].startswith("text/html")
        assert r.headers["retry-after"] == "3"


@pytest.mark.asyncio
async def test_forwarded_for_ignored_from_untrusted_peers(platform_settings: Settings) -> None:
    async with limited_app(platform_settings) as app, client_for(app) as http:
        for i in range(5):
            assert (
                await _failed_login(http, **{"X-Forwarded-For": f"198.51.100.{i}"})
            ).status_code == 401
        r = await _failed_login(http, **{"X-Forwarded-For": "198.51.100.99"})
        assert r.status_code == 429  # a spoofed header does not buy a new bucket
        async with peer_client(app, "192.0.2.10") as other:
            assert (await _failed_login(other)).status_code == 401  # another peer: own bucket


@pytest.mark.asyncio
async def test_forwarded_for_from_trusted_proxy(platform_settings: Settings) -> None:
    async with (
        limited_app(platform_settings, trusted_proxies=["10.0.0.0/8"]) as app,
        peer_client(app, "10.1.2.3") as proxy,
    ):
        for _ in range(5):
            assert (
                await _failed_login(proxy, **{"X-Forwarded-For": "203.0.113.7"})
            ).status_code == 401
        assert (await _failed_login(proxy, **{"X-Forwarded-For": "203.0.113.7"})).status_code == 429
        # Behind the proxy every client has its own bucket (not one for the whole site).
        assert (await _failed_login(proxy, **{"X-Forwarded-For": "203.0.113.8"})).status_code == 401
        # A client that prepends a fake address is still keyed by the one the proxy saw.
        spoofed = await _failed_login(proxy, **{"X-Forwarded-For": "203.0.113.9, 203.0.113.7"})
        assert spoofed.status_code == 429
        # Requests from the proxy itself without the header count for the proxy.
        assert (await _failed_login(proxy)).status_code == 401


@pytest.mark.asyncio
async def test_limits_can_be_disabled(app: FastAPI, http: httpx.AsyncClient) -> None:
    assert app.state.rate_limiter.enabled is False  # conftest: RATE_LIMITS_ENABLED=false
    for _ in range(8):
        assert (await _failed_login(http)).status_code == 401
