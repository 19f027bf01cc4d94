"""Request ids, DB command counts, metrics, health, profiling and the error contract."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from platform_core.app import create_app
from platform_core.observability.middleware import RequestIdFilter, current_request_id
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, client_for

# --- request ids ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_response_has_a_request_id(http: httpx.AsyncClient) -> None:
    ids = set()
    for path in ("/", "/healthz", "/nope", "/api/nope", "/auth/login"):
        r = await http.get(path)
        assert len(r.headers["x-request-id"]) >= 16
        ids.add(r.headers["x-request-id"])
    assert len(ids) == 5
    r = await http.post("/auth/logout", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "x-request-id" in r.headers


@pytest.mark.asyncio
async def test_incoming_request_id_kept_only_if_sane(http: httpx.AsyncClient) -> None:
    r = await http.get("/healthz", headers={"X-Request-ID": "load-test-42"})
    assert r.headers["x-request-id"] == "load-test-42"
    for bad in ("a" * 65, "bad id", "x;y", "ünï", "<script>", ""):
        r = await http.get("/healthz", headers={"X-Request-ID": bad.encode()})
        assert r.headers["x-request-id"] != bad
        assert len(r.headers["x-request-id"]) == 32


def test_log_filter_adds_request_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert RequestIdFilter().filter(record) and record.request_id == current_request_id() == "-"


# --- DB command counts ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_db_commands_header_is_exact(
    app: FastAPI, http: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    assert (await http.get("/healthz")).headers["x-db-commands"] == "1"  # ping
    assert (await http.get("/")).headers["x-db-commands"] == "1"  # one find
    assert (await http.get("/auth/login")).headers["x-db-commands"] == "0"
    # Roles come from memory: listing users is one find, whatever the number of users.
    assert (await admin_http.get("/admin/api/users")).headers["x-db-commands"] == "1"
    login = await http.post(
        "/auth/login", data={"email": ADMIN_EMAIL, "password": "admin-pass-123"}
    )
    assert login.headers["x-db-commands"] == "1"  # find_one on users


# --- metrics -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_metrics_by_route_template(
    app: FastAPI, http: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    await http.get("/")
    await http.get("/no/such/page")
    await admin_http.post("/admin/api/users/nobody@example.com/roles/user")
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'http_requests_total{method="GET",route="/",status="200"}' in text
    assert 'route="/admin/api/users/{email}/roles/{role}",status="404"' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "nobody@example.com" not in text  # raw paths never become labels
    assert "http_request_duration_seconds_bucket" in text
    assert 'http_request_db_commands_bucket{le="1.0",method="GET",route="/"}' in text
    for name in ("db_pool_connections_created_total", "db_pool_in_use", "event_loop_lag_ms",
                 "authz_cache_events_total", "authz_cache_entries"):  # fmt: skip
        assert name in text, name


@pytest.mark.asyncio
async def test_two_apps_in_one_process_keep_separate_metrics(
    app: FastAPI, http: httpx.AsyncClient, platform_settings: Settings
) -> None:
    other = create_app(platform_settings)  # a second registry must not clash
    await http.get("/")
    assert 'route="/",status="200"' in app.state.metrics.render().decode()
    assert 'route="/",status="200"' not in other.state.metrics.render().decode()


# --- health --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_healthz_reports_backend_pool_lag_knobs(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    app.state.knobs = {"role_checks": "casbin_memory"}
    body = (await http.get("/healthz")).json()
    assert body["status"] == "ok" and body["db"] == "ok"
    assert body["backend"]["name"] in ("SecantusDB", "mongod")
    assert body["driver"] == "pymongo"
    assert body["pool"]["maxPoolSize"] == app.state.settings.mongodb_max_pool_size
    assert "admin-pass-123" not in str(body)
    assert set(body["pool_snapshot"]) >= {"connections_created", "in_use", "wait_p99_ms"}
    assert set(body["loop_lag_ms"]) == {"samples", "p50_ms", "p99_ms", "max_ms"}
    assert body["knobs"] == {"role_checks": "casbin_memory"}
    assert body["strategies"]["password_hashing"] == "thread"


# --- profiling -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_profile_parameter_ignored_when_disabled(http: httpx.AsyncClient) -> None:
    r = await http.get("/healthz", params={"profile": "1"})
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.asyncio
async def test_profile_one_request_when_enabled(app: FastAPI, http: httpx.AsyncClient) -> None:
    # Warm up first: a cold first request (template compilation, lazy imports) sampled
    # every 0.1 ms yields a multi-megabyte profile and takes seconds to render.
    assert (await http.get("/")).status_code == 200
    app.state.settings.profiling_enabled = True
    try:
        r = await http.get("/", params={"profile": "1"})
    finally:
        app.state.settings.profiling_enabled = False
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "pyinstrument" in r.text.lower()
    assert r.headers["x-profiled-status"] == "200"
    assert "x-request-id" in r.headers


# --- error contract ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_not_found_json_vs_html(http: httpx.AsyncClient) -> None:
    api = await http.get("/api/nope")
    assert api.status_code == 404
    assert api.json() == {"detail": "Not Found", "status": "error"}
    admin_api = await http.get("/admin/api/nope")
    assert admin_api.status_code == 404 and admin_api.json()["status"] == "error"
    page = await http.get("/nope")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "404" in page.text and page.headers["x-request-id"] in page.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'{"email": 5, "password": null}', "application/json"),
        (b"", "application/json"),
        (b"email=a&password=b", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00garbage", "application/octet-stream"),
        (b'{"email": "' + b"a" * 100_000 + b'"}', "application/json"),
    ],
)
@pytest.mark.asyncio
async def test_malformed_bodies_are_4xx_json(
    admin_http: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    r = await admin_http.post(
        "/admin/api/users/create", content=content, headers={"Content-Type": content_type}
    )
    assert 400 <= r.status_code < 500, r.text[:200]
    body = r.json()
    assert body["status"] == "error" and isinstance(body["detail"], str)
    assert "Traceback" not in r.text and "a" * 1000 not in r.text


@pytest.mark.asyncio
async def test_validation_errors_do_not_echo_input(admin_http: httpx.AsyncClient) -> None:
    r = await admin_http.post(
        "/admin/api/users/create",
        json={"email": "v@example.com", "password": "Sup3r-S3cret-Value", "role": "wizard"},
    )
    assert r.status_code == 422
    assert "Sup3r-S3cret-Value" not in r.text
    assert "role" in r.json()["detail"]


@pytest.mark.asyncio
async def test_unhandled_errors_are_500_without_details(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("internal secret detail")

    class Body(BaseModel):
        n: int

    app.add_api_route("/api/boom", boom)
    app.add_api_route("/boom", boom)
    async with client_for(app) as client:
        with caplog.at_level(logging.ERROR, logger="platform_core.request"):
            api = await client.get("/api/boom")
            page = await client.get("/boom")
    assert api.status_code == 500 and page.status_code == 500
    assert api.json() == {"detail": "Internal server error", "status": "error"}
    for r in (api, page):
        assert "internal secret detail" not in r.text and "Traceback" not in r.text
        assert "x-request-id" in r.headers
    logged = [rec for rec in caplog.records if "unhandled error" in rec.getMessage()]
    assert len(logged) == 2
    assert api.headers["x-request-id"] in logged[0].getMessage()
    assert logged[0].exc_info is not None  # the traceback goes to the log only


@pytest.mark.asyncio
async def test_log_lines_inside_a_request_carry_its_id(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async def noisy() -> dict[str, str]:
        logging.getLogger("platform_core.test").warning("inside the handler")
        return {"ok": "yes"}

    app.add_api_route("/api/noisy", noisy)
    caplog.handler.addFilter(RequestIdFilter())
    async with client_for(app) as client:
        with caplog.at_level(logging.WARNING, logger="platform_core.test"):
            r = await client.get("/api/noisy", headers={"X-Request-ID": "trace-me-1"})
    records = [rec for rec in caplog.records if rec.getMessage() == "inside the handler"]
    assert records and records[0].request_id == "trace-me-1" == r.headers["x-request-id"]
