"""Authentication: tokens, cookies, login/logout/register, redirects, secrets."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
import warnings

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from platform_core.app import create_app
from platform_core.auth.models import CurrentUser
from platform_core.auth.passwords import PasswordHasher, password_problem
from platform_core.auth.redirects import is_safe_next_url, safe_next_url
from platform_core.auth.tokens import (
    AUDIENCE,
    TOKEN_TYPE,
    SecretError,
    TokenCodec,
    load_or_create_secret,
)
from platform_core.deps import require_user
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for, login, make_user

SECRET = "s" * 40
USER = CurrentUser(user_id="u1", email="a@example.com", is_admin=False)

# --- next-URL guard ---------------------------------------------------------------------------

EVIL_NEXT = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "%5C%5Cevil.example",
    "/%252F%252Fevil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "http://evil.example",
    "https://evil.example/x",
    "evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    " /path",
    "/pa th",
    "/\x00x",
    "/／evil.example",  # fullwidth solidus
    "",
    "/" + "a" * 5000,
]


@pytest.mark.parametrize("value", EVIL_NEXT)
def test_safe_next_url_refuses(value: str) -> None:
    assert not is_safe_next_url(value)
    assert safe_next_url(value) == "/"


@pytest.mark.parametrize(
    "value", ["/", "/my-experiments", "/experiments/demo_1/page?x=1&y=2", "/a:b", "/a%2Fb"]
)
def test_safe_next_url_accepts_same_site_paths(value: str) -> None:
    assert safe_next_url(value) == value


def test_safe_next_url_non_string() -> None:
    assert safe_next_url(None) == "/"
    assert safe_next_url(["/x"]) == "/"


# --- tokens -------------------------------------------------------------------------------------


def test_token_round_trip() -> None:
    codec = TokenCodec(SECRET, 3600)
    assert codec.decode(codec.encode(USER)) == USER
    assert "sss" not in repr(codec)


def _forge(claims: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    with warnings.catch_warnings():  # PyJWT warns about a short key for HS512: intended
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm=alg)


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "user_id": "u1", "email": "a@example.com", "is_admin": True,
        "iat": now, "exp": now + 60, "typ": TOKEN_TYPE, "aud": AUDIENCE,
    }  # fmt: skip
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _alg_none(claims: dict[str, object]) -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def _bad_tokens() -> dict[str, str]:
    good = TokenCodec(SECRET, 3600).encode(USER)
    head, body, sig = good.split(".")
    tampered_body = json.loads(base64.urlsafe_b64decode(body + "=="))
    tampered_body["is_admin"] = True
    tampered_body["email"] = ADMIN_EMAIL
    forged_body = base64.urlsafe_b64encode(json.dumps(tampered_body).encode()).rstrip(b"=")
    return {
        "tampered": f"{head}.{forged_body.decode()}.{sig}",
        "bad_signature": f"{head}.{body}.{sig[:-4]}AAAA",
        "expired": _forge(_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
        "wrong_key": _forge(_claims(), key="k" * 40),
        "alg_none": _alg_none(_claims()),
        "hs512": _forge(_claims(), alg="HS512"),
        "wrong_audience": _forge(_claims(aud="experiment:demo")),
        "no_audience": _forge(_claims(aud=None)),
        "wrong_type": _forge(_claims(typ="experiment-session")),
        "no_type": _forge(_claims(typ=None)),
        "no_exp": _forge(_claims(exp=None)),
        "bad_is_admin_type": _forge(_claims(is_admin="yes")),
        "garbage": "not.a.jwt",
        "empty_segments": "..",
        "huge": "a" * 10_000,
    }


@pytest.mark.parametrize("name", sorted(_bad_tokens()))
def test_bad_tokens_decode_to_anonymous(name: str) -> None:
    assert TokenCodec(SECRET, 3600).decode(_bad_tokens()[name]) is None


@pytest.mark.asyncio
async def test_bad_token_cookies_are_anonymous_over_http(app: FastAPI) -> None:
    secret = app.state.token_codec._secret
    tokens = _bad_tokens()
    # Re-mint the key-dependent ones with the app's real key where the point is the claims.
    now = int(time.time())
    tokens["expired"] = _forge(_claims(iat=now - 7200, exp=now - 3600), key=secret)
    tokens["wrong_audience"] = _forge(_claims(aud="other"), key=secret)
    tokens["wrong_type"] = _forge(_claims(typ="experiment-session"), key=secret)
    tokens["alg_none"] = _alg_none(_claims(email=ADMIN_EMAIL))
    for name, token in tokens.items():
        async with client_for(app, cookies={"token": token}) as client:
            api = await client.get("/admin/api/users")
            assert api.status_code == 401, name
            page = await client.get("/my-experiments")
            assert page.status_code == 307, name


# --- secrets ------------------------------------------------------------------------------------


def test_secret_generated_once_with_0600(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "d", jwt_secret=None)
    first = load_or_create_secret(settings)
    second = load_or_create_secret(settings)
    assert first == second and len(first) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "d" / "jwt_secret").st_mode)
    assert mode == 0o600


def test_configured_secret_wins_and_short_one_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert load_or_create_secret(Settings(data_dir=tmp_path, jwt_secret=SECRET)) == SECRET
    assert not (tmp_path / "jwt_secret").exists()
    with pytest.raises(SecretError, match="too short"):
        load_or_create_secret(Settings(data_dir=tmp_path, jwt_secret="short"))


@pytest.mark.asyncio
async def test_token_from_one_app_valid_in_another_with_same_data_dir(
    platform_settings: Settings,
) -> None:
    one = create_app(platform_settings)
    two = create_app(platform_settings)
    token = one.state.token_codec.encode(USER)
    assert two.state.token_codec.decode(token) == USER


# --- passwords ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "inline"])
@pytest.mark.asyncio
async def test_password_hasher_modes(mode: str) -> None:
    hasher = PasswordHasher(rounds=4, mode=mode)  # type: ignore[arg-type]
    hashed = await hasher.hash("correct horse")
    assert await hasher.verify("correct horse", hashed)
    assert not await hasher.verify("wrong horse", hashed)
    assert not await hasher.verify("x" * 100, hashed)  # > 72 bytes: refused, not an error
    assert not await hasher.verify("anything", None)
    assert not await hasher.verify("anything", b"not-a-bcrypt-hash")


def test_password_rules() -> None:
    assert password_problem("short") is not None
    assert password_problem("long enough") is None
    assert password_problem("é" * 40) is not None  # 80 bytes


# --- login / logout -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_login_sets_hardened_cookie_and_redirects(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/auth/login",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/my-experiments"},
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/my-experiments"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("token=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # test environment over http
    assert (await http.get("/admin/api/users")).status_code == 200


@pytest.mark.asyncio
async def test_login_email_is_case_insensitive(http: httpx.AsyncClient) -> None:
    await login(http, ADMIN_EMAIL.upper(), ADMIN_PASSWORD)


@pytest.mark.parametrize("evil", ["//evil.example", "/\\evil.example", "https://evil.example",
                                  "%2F%2Fevil.example", "javascript:alert(1)"])  # fmt: skip
@pytest.mark.asyncio
async def test_login_never_redirects_off_site(http: httpx.AsyncClient, evil: str) -> None:
    page = await http.get("/auth/login", params={"next": evil})
    assert page.status_code == 200
    assert 'name="next" value="/"' in page.text
    r = await http.post(
        "/auth/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": evil}
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


@pytest.mark.asyncio
async def test_login_failures(http: httpx.AsyncClient) -> None:
    wrong = await http.post("/auth/login", data={"email": ADMIN_EMAIL, "password": "nope-nope"})
    unknown = await http.post("/auth/login", data={"email": "who@example.com", "password": "x" * 9})
    assert wrong.status_code == unknown.status_code == 401
    assert "Invalid email or password" in wrong.text and "Invalid email or password" in unknown.text
    missing = await http.post("/auth/login", data={"email": ADMIN_EMAIL})
    assert missing.status_code == 400
    as_json = await http.post("/auth/login", json={"email": ADMIN_EMAIL, "password": "x"})
    assert as_json.status_code == 400
    assert "token" not in http.cookies


@pytest.mark.asyncio
async def test_logout_is_post_only(http: httpx.AsyncClient) -> None:
    await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = await http.get("/auth/logout")
    assert r.status_code == 405
    assert (await http.get("/admin/api/users")).status_code == 200  # still logged in
    r = await http.post("/auth/logout")
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert 'token=""' in r.headers["set-cookie"] or "max-age=0" in r.headers["set-cookie"].lower()
    assert (await http.get("/admin/api/users")).status_code == 401


@pytest.mark.asyncio
async def test_anonymous_html_redirect_keeps_location_and_safe_next(
    http: httpx.AsyncClient,
) -> None:
    r = await http.get("/my-experiments", params={"a": "1"})
    assert r.status_code == 307
    assert r.headers["location"] == "/auth/login?next=%2Fmy-experiments%3Fa%3D1"
    # The login page carries the decoded next back.
    page = await http.get(r.headers["location"])
    assert 'value="/my-experiments?a=1"' in page.text


@pytest.mark.asyncio
async def test_anonymous_writes_get_401_not_a_redirect(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    async def handler() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_api_route("/needs-login", handler, methods=["GET", "POST"],
                      dependencies=[Depends(require_user)])  # fmt: skip
    assert (await http.get("/needs-login")).status_code == 307
    post = await http.post("/needs-login", data={"x": "1"})
    assert post.status_code == 401 and "location" not in post.headers
    assert "text/html" in post.headers["content-type"]


@pytest.mark.asyncio
async def test_production_cookie_is_secure(platform_settings: Settings) -> None:
    settings = platform_settings.model_copy(
        update={"environment": "production", "admin_password": "a-strong-admin-pass-1"}
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        try:
            async with client_for(application) as client:
                r = await client.post(
                    "/auth/login",
                    data={"email": ADMIN_EMAIL, "password": "a-strong-admin-pass-1"},
                )
                assert r.status_code == 303
                assert "secure" in r.headers["set-cookie"].lower()
                # No public API docs in production.
                assert (await client.get("/api/docs")).status_code == 404
        finally:
            await application.state.client.drop_database(settings.mongodb_db)


# --- registration -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_register_flow(app: FastAPI, http: httpx.AsyncClient) -> None:
    assert (await http.get("/auth/register")).status_code == 200
    r = await http.post(
        "/auth/register",
        data={"email": "New@Example.com", "password": "new-pass-123", "next": "//evil"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "token" in http.cookies
    doc = await app.state.db.users.find_one({"email": "new@example.com"})
    assert doc is not None and doc["is_admin"] is False
    assert doc["password_hash"] != b"new-pass-123"
    assert await app.state.authz.get_roles_for_user("new@example.com") == []
    # Registered users are not admins or developers.
    assert (await http.get("/admin/api/users")).status_code == 403
    assert (await http.get("/my-experiments")).status_code == 403

    async with client_for(app) as other:
        taken = await other.post(
            "/auth/register", data={"email": "new@example.com", "password": "another-pass-1"}
        )
        assert taken.status_code == 409
        short = await other.post(
            "/auth/register", data={"email": "short@example.com", "password": "1234567"}
        )
        assert short.status_code == 400
        bad_email = await other.post(
            "/auth/register", data={"email": "not-an-email", "password": "12345678"}
        )
        assert bad_email.status_code == 400


@pytest.mark.asyncio
async def test_registration_disabled_is_404(platform_settings: Settings) -> None:
    settings = platform_settings.model_copy(update={"enable_registration": False})
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        try:
            async with client_for(application) as client:
                assert (await client.get("/auth/register")).status_code == 404
                r = await client.post(
                    "/auth/register", data={"email": "x@example.com", "password": "12345678"}
                )
                assert r.status_code == 404
                assert await application.state.db.users.count_documents({}) == 1  # admin
        finally:
            await application.state.client.drop_database(settings.mongodb_db)


@pytest.mark.asyncio
async def test_logged_in_user_sees_own_email(app: FastAPI, http: httpx.AsyncClient) -> None:
    await make_user(app, "dev@example.com", roles=["developer"])
    await login(http, "dev@example.com", "user-pass-123")
    page = await http.get("/")
    assert "dev@example.com" in page.text and "My experiments" in page.text
    assert 'href="/admin/"' not in page.text
