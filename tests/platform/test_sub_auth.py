"""Experiment-level auth (spec 2.10 with 8.1/8.11/8.13 fixed): strategy choice, the hybrid
decision order (a)-(e), token confusion, session cookies, hashed-only passwords, demo
fallback and the scoping of the experiment's users collection.

The test experiment is a copy of the ``click_tracker`` sample with ``auth_required`` and
``sub_auth`` switched on and two extra routes that echo the identity.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from platform_core.auth.models import CurrentUser
from platform_core.auth.tokens import load_or_create_secret
from platform_core.db.scoped import ScopedDatabase, ScopeViolation
from platform_core.experiments.manifest import SubAuth
from platform_core.experiments.sub_auth import (
    ExperimentSessionCodec,
    authenticate_experiment_user,
    create_experiment_user,
    ensure_demo_users,
    select_auth_strategy,
    session_cookie_name,
)
from platform_core.experiments.testing import copy_samples, started_app
from platform_core.settings import Settings
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for, login, make_user

SLUG = "click_tracker"
COOKIE = f"lab_{SLUG}"
WHOAMI = f"/experiments/{SLUG}/api/whoami"
AUTH = f"/experiments/{SLUG}/auth"
ECHO_ROUTES = """

from platform_core.experiments.sub_auth import ExperimentUser


@bp.get("/api/whoami")
async def whoami(user: ExperimentUser) -> dict:
    return user.as_dict() if user else {"kind": None}


@bp.get("/api/signup-preview")
async def signup_preview(user: ExperimentUser) -> dict:
    return user.as_dict() if user else {"kind": None}
"""
BASE_SUB_AUTH: dict[str, Any] = {
    "enabled": True,
    "strategy": "hybrid",
    "collection_name": "members",
    "session_cookie_name": "lab",
    "session_ttl_seconds": 3600,
    "allow_registration": True,
    "demo_users": [{"email": "demo@lab.io", "password": "demo-pass"}],
}


def write_experiment(root: Path, sub_auth: dict[str, Any] | None, **manifest: Any) -> None:
    copy_samples(root, (SLUG,))
    folder = root / SLUG
    data = json.loads((folder / "manifest.json").read_text())
    data.update({"auth_required": True, **manifest})
    if sub_auth is not None:
        data["sub_auth"] = sub_auth
    (folder / "manifest.json").write_text(json.dumps(data))
    with (folder / "__init__.py").open("a") as fh:
        fh.write(ECHO_ROUTES)


@pytest.fixture
def lab(platform_settings: Settings, tmp_path: Path) -> Callable[..., Any]:
    """``async with lab(**sub_auth_overrides) as app``: the app with the test experiment."""
    counter = iter(range(100))

    @contextlib.asynccontextmanager
    async def start(sub_auth: dict[str, Any] | None = None, *, rate_limits: bool = False,
                    **overrides: Any) -> AsyncIterator[FastAPI]:  # fmt: skip
        root = tmp_path / f"experiments{next(counter)}"
        write_experiment(root, {**BASE_SUB_AUTH, **overrides} if sub_auth is None else sub_auth)
        settings = platform_settings.model_copy(
            update={"experiments_dir": root, "rate_limits_enabled": rate_limits}
        )
        async with started_app(settings) as app:
            assert SLUG in app.state.experiment_service.registry, (
                app.state.experiment_service.errors
            )
            yield app

    return start


def platform_token(app: FastAPI, user_id: str, email: str, *, is_admin: bool = False) -> str:
    return app.state.token_codec.encode(CurrentUser(user_id, email, is_admin))


def session_codec(app: FastAPI) -> ExperimentSessionCodec:
    return ExperimentSessionCodec(load_or_create_secret(app.state.settings))


async def get_with(app: FastAPI, path: str, cookies: dict[str, str]) -> httpx.Response:
    """One request carrying exactly ``cookies`` (a fresh client: no cookie leaks between)."""
    async with client_for(app, cookies=cookies) as client:
        return await client.get(path)


async def whoami(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(WHOAMI)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.json()


async def whoami_as(app: FastAPI, cookies: dict[str, str]) -> dict[str, Any]:
    response = await get_with(app, WHOAMI, cookies)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.json()


# -- strategy choice --------------------------------------------------------------------------


def test_strategy_is_chosen_in_one_order() -> None:
    sub = {"enabled": True}
    assert select_auth_strategy({"auth_policy": {}, "auth_required": True, "sub_auth": sub}) == (
        "policy"
    )
    assert select_auth_strategy({"auth_required": True, "sub_auth": sub}) == "hybrid"
    assert select_auth_strategy({"auth_required": True, "sub_auth": {"enabled": False}}) == "login"
    assert select_auth_strategy({"auth_required": True}) == "login"
    assert select_auth_strategy({"sub_auth": sub}) == "optional"
    assert select_auth_strategy({}) == "optional"


# -- the decision order (a)-(e) ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_hybrid_decision_order(lab: Callable[..., Any]) -> None:
    async with lab() as app, client_for(app) as anon:
        # (e) anonymous: page views are redirected to the experiment's login form, the
        # rest gets 401; the demo user exists in the manifest but demo access is off
        page = await anon.get(f"/experiments/{SLUG}/")
        assert page.status_code == 307
        assert page.headers["location"] == f"{AUTH}/login?next=%2Fexperiments%2F{SLUG}%2F"
        assert (await anon.get(WHOAMI)).status_code == 401
        assert (await anon.post(f"/experiments/{SLUG}/api/click", json={"page": "x"})).status_code == 401  # fmt: skip

        # (a) admin: the seeded admin (provider says admin_panel:access)
        async with client_for(app) as admin:
            await login(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
            me = await whoami(admin)
            assert me["kind"] == "admin" and me["email"] == ADMIN_EMAIL

        # (b) platform user, even with a forged is_admin claim (spec 8.13): not admin, and
        # linked to a profile in the experiment's own collection
        doc = await make_user(app, "pat@lab.io")
        forged = platform_token(app, str(doc["_id"]), "pat@lab.io", is_admin=True)
        me = await whoami_as(app, {"token": forged})
        assert me["kind"] == "platform" and me["is_admin"] is False
        assert me["platform_user_id"] == str(doc["_id"])
        linked = await app.state.db[f"{SLUG}_members"].find({"platform_user_id": str(doc["_id"])}).to_list()  # fmt: skip
        assert len(linked) == 1 and linked[0]["experiment_id"] == SLUG
        assert me["user_id"] == str(linked[0]["_id"])
        await whoami_as(app, {"token": forged})  # second visit: still one profile
        assert await app.state.db[f"{SLUG}_members"].count_documents({"platform_user_id": str(doc["_id"])}) == 1  # fmt: skip

        # (c) experiment user: register through the experiment's own route (JSON)
        async with client_for(app) as member:
            r = await member.post(f"{AUTH}/register",
                                  json={"email": "Mia@Lab.io", "password": "mia-pass-123"})  # fmt: skip
            assert r.status_code == 201, r.text
            assert "password_hash" not in r.json()["user"]
            set_cookie = r.headers["set-cookie"].lower()
            assert set_cookie.startswith(f"{COOKIE}=".lower())
            assert "httponly" in set_cookie and "samesite=lax" in set_cookie
            assert f"path=/experiments/{SLUG}" in set_cookie and "secure" not in set_cookie
            me = await whoami(member)
            assert me["kind"] == "experiment" and me["email"] == "mia@lab.io"
            # the experiment's data is usable by the experiment user
            assert (await member.post(f"/experiments/{SLUG}/api/click", json={"page": "p"})).status_code == 201  # fmt: skip
            # a platform token takes precedence over the experiment session (order a/b < c)
            me = await whoami_as(app, {**dict(member.cookies), "token": forged})
            assert me["kind"] == "platform"
            # logout clears the session
            r = await member.post(f"{AUTH}/logout", json={})
            assert r.status_code == 200
            assert (await member.get(WHOAMI)).status_code == 401

        # login with the form: 303 to a safe next, never to another site
        async with client_for(app) as member:
            r = await member.post(f"{AUTH}/login", data={"email": "mia@lab.io", "password": "mia-pass-123", "next": "//evil.example/x"})  # fmt: skip
            assert r.status_code == 303 and r.headers["location"] == f"/experiments/{SLUG}/"
            assert (await whoami(member))["kind"] == "experiment"
            bad = await member.post(f"{AUTH}/login", json={"email": "mia@lab.io", "password": "wrong-pass-1"})  # fmt: skip
            unknown = await member.post(f"{AUTH}/login", json={"email": "nobody@lab.io", "password": "wrong-pass-1"})  # fmt: skip
            assert bad.status_code == unknown.status_code == 401
            assert bad.json() == unknown.json()
            # the login form itself is reachable anonymously (outside the guard)
            assert (await anon.get(f"{AUTH}/login")).status_code == 200


# -- token confusion, expired and tampered cookies ---------------------------------------------


@pytest.mark.asyncio
async def test_platform_and_experiment_tokens_never_confused(lab: Callable[..., Any]) -> None:
    async with lab() as app:
        users = app.state.db[f"{SLUG}_members"]
        doc = await make_user(app, "pat@lab.io")
        member = await users.insert_one({"email": "mia@lab.io", "experiment_id": SLUG})
        member_id = str(member.inserted_id)
        codec = session_codec(app)
        session = codec.encode(SLUG, member_id, 600)
        platform = platform_token(app, str(doc["_id"]), "pat@lab.io")
        assert (await whoami_as(app, {COOKIE: session}))["kind"] == "experiment"

        # a platform token presented as the experiment session: anonymous
        assert (await get_with(app, WHOAMI, {COOKIE: platform})).status_code == 401
        assert codec.decode(platform, SLUG) is None
        # an experiment session presented as the platform token: not a platform login
        assert app.state.token_codec.decode(session) is None
        assert (await get_with(app, WHOAMI, {"token": session})).status_code == 401
        assert (await get_with(app, "/admin/", {"token": session})).status_code == 307
        # a session of another experiment (other aud) or an anonymous-session token: refused
        assert codec.decode(codec.encode("other", member_id, 600), SLUG) is None
        anon_token = codec.encode(SLUG, member_id, 600, typ="experiment-anonymous")
        assert (await get_with(app, WHOAMI, {COOKIE: anon_token})).status_code == 401

        # expired, tampered, unsigned and garbage cookies are all anonymous
        expired = codec.encode(SLUG, member_id, 600, now=time.time() - 3600)
        head, body, sig = session.split(".")
        tampered = f"{head}.{body}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
        import jwt  # a token signed with another key

        forged = jwt.encode({"experiment_slug": SLUG, "experiment_user_id": member_id,
                             "iat": int(time.time()), "exp": int(time.time()) + 600,
                             "typ": "experiment-session", "aud": f"platform_core:experiment:{SLUG}"},
                            "x" * 48, algorithm="HS256")  # fmt: skip
        unsigned = jwt.encode({"experiment_slug": SLUG, "experiment_user_id": member_id},
                              None, algorithm="none")  # fmt: skip
        for value in (expired, tampered, forged, unsigned, member_id, "garbage"):
            r = await get_with(app, WHOAMI, {COOKIE: value})
            assert r.status_code == 401, value
        # a valid session of a deleted account is anonymous again
        await users.delete_one({"_id": member.inserted_id})
        assert (await get_with(app, WHOAMI, {COOKIE: session})).status_code == 401


# -- passwords --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_no_plain_text_password_is_ever_stored(lab: Callable[..., Any]) -> None:
    async with lab(demo_users=[{"email": "demo@lab.io", "password": "demo-pass"},
                               {"email": "guest@lab.io", "password": "guest-pw"}]) as app:  # fmt: skip
        service = app.state.experiment_service
        db = service.scoped_db(service.registry[SLUG])
        users = db.collection("members")
        hasher = app.state.password_hasher
        sub = SubAuth.model_validate({**BASE_SUB_AUTH, "demo_users": [
            {"email": "demo@lab.io", "password": "demo-pass"},
            {"email": "guest@lab.io", "password": "guest-pw"}]})  # fmt: skip
        await create_experiment_user(users, hasher, "mia@lab.io", "mia-pass-123")
        assert await ensure_demo_users(users, hasher, SLUG, sub) == ["demo@lab.io", "guest@lab.io"]
        assert await ensure_demo_users(users, hasher, SLUG, sub) == []  # idempotent
        async with client_for(app) as client:  # the login route provisions nothing twice
            r = await client.post(f"{AUTH}/login", json={"email": "demo@lab.io", "password": "demo-pass"})  # fmt: skip
            assert r.status_code == 200 and r.json()["user"]["is_demo"] is True
            assert (await whoami(client))["kind"] == "demo"

        raw = await app.state.db[f"{SLUG}_members"].find({}).to_list()
        assert len(raw) == 3
        for doc in raw:
            assert "password" not in doc
            assert doc["password_hash"].startswith("$2b$")
            text = json.dumps(doc, default=str)
            for secret in ("mia-pass-123", "demo-pass", "guest-pw"):
                assert secret not in text
        assert await authenticate_experiment_user(users, hasher, "MIA@lab.io", "mia-pass-123")
        assert (
            await authenticate_experiment_user(users, hasher, "mia@lab.io", "nope-nope-1") is None
        )
        # a legacy record with a plain-text password never authenticates
        await users.insert_one({"email": "old@lab.io", "password": "old-pass-123"})
        assert (
            await authenticate_experiment_user(users, hasher, "old@lab.io", "old-pass-123") is None
        )


# -- demo fallback ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_demo_fallback_is_off_by_default(lab: Callable[..., Any]) -> None:
    # default flags: auto_link_platform_demo=true, demo_user_seed_strategy=auto; no access
    async with lab() as app, client_for(app) as anon:
        assert SubAuth.model_validate(BASE_SUB_AUTH).allow_demo_access is False
        assert (await anon.get(WHOAMI)).status_code == 401
        assert (await anon.get(f"/experiments/{SLUG}/")).status_code == 307
        assert await app.state.db[f"{SLUG}_members"].count_documents({}) == 0


@pytest.mark.asyncio
async def test_demo_fallback_when_explicitly_allowed(lab: Callable[..., Any]) -> None:
    async with lab(allow_demo_access=True) as app, client_for(app) as anon:
        me = await whoami(anon)
        assert me["kind"] == "demo" and me["is_demo"] and me["email"] == "demo@lab.io"
        demo = await app.state.db[f"{SLUG}_members"].find_one({"email": "demo@lab.io"})
        assert demo["password_hash"].startswith("$2b$") and "password" not in demo
        # never on login/register/auth-like paths
        r = await anon.get(f"/experiments/{SLUG}/api/signup-preview")
        assert r.status_code == 401


# -- scoping of the users collection --------------------------------------------------------


@pytest.mark.asyncio
async def test_experiment_users_are_scoped(lab: Callable[..., Any]) -> None:
    async with lab() as app, client_for(app) as client:
        r = await client.post(f"{AUTH}/register", json={"email": "mia@lab.io", "password": "mia-pass-123"})  # fmt: skip
        assert r.status_code == 201
        raw = app.state.db
        assert f"{SLUG}_members" in await raw.list_collection_names()
        doc = await raw[f"{SLUG}_members"].find_one({"email": "mia@lab.io"})
        assert doc["experiment_id"] == SLUG
        indexes = await raw[f"{SLUG}_members"].index_information()
        assert indexes[f"{SLUG}_sub_auth_email"].get("unique") is True
        assert await raw["users"].find_one({"email": "mia@lab.io"}) is None  # not a platform user
        # another experiment sees neither the collection nor the account
        other = ScopedDatabase(raw, ["catalog"], "catalog")
        assert await other.collection("members").count_documents({}) == 0
        with pytest.raises(ScopeViolation):
            other.collection("members", owner=SLUG)
        # the experiment account cannot log in to the platform
        r = await client.post("/auth/login", data={"email": "mia@lab.io", "password": "mia-pass-123"})  # fmt: skip
        assert r.status_code == 401


# -- routes exist only when sub_auth asks for them -----------------------------------------------


@pytest.mark.asyncio
async def test_login_routes_only_with_experiment_users(lab: Callable[..., Any]) -> None:
    async with lab(allow_registration=False) as app, client_for(app) as client:
        assert (await client.get(f"{AUTH}/login")).status_code == 200
        r = await client.post(f"{AUTH}/register", json={"email": "a@lab.io", "password": "x" * 10})
        assert r.status_code == 404
    async with lab(strategy="anonymous_session") as app, client_for(app) as client:
        assert (await client.get(f"{AUTH}/login")).status_code == 404  # no such route
        page = await client.get(f"/experiments/{SLUG}/")
        assert page.headers["location"].startswith("/auth/login")  # platform login
    async with lab(sub_auth={"enabled": False}) as app, client_for(app) as client:
        assert (await client.get(f"{AUTH}/login")).status_code == 404


@pytest.mark.asyncio
async def test_experiment_login_is_rate_limited(lab: Callable[..., Any]) -> None:
    async with lab(rate_limits=True) as app, client_for(app) as client:
        creds = {"email": "mia@lab.io", "password": "wrong-pass-1"}
        codes = [(await client.post(f"{AUTH}/login", json=creds)).status_code for _ in range(6)]
        assert codes == [401] * 5 + [429]


def test_cookie_name_must_be_a_plain_token() -> None:
    with pytest.raises(ValueError):
        session_cookie_name(SLUG, SubAuth.model_validate({"enabled": True,
                                                          "session_cookie_name": "a;b=c"}))  # fmt: skip
    assert session_cookie_name(SLUG, SubAuth.model_validate({"enabled": True})) == (
        f"experiment_session_{SLUG}"
    )


# -- anonymous sessions and live config -------------------------------------------------------


def fake_request(settings: Settings, cookies: dict[str, str] | None = None) -> Any:
    from starlette.requests import Request

    app = FastAPI()
    app.state.settings = settings
    header = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", header.encode())],
             "query_string": b"", "scheme": "http", "server": ("testserver", 80), "app": app}  # fmt: skip
    return Request(scope)


def test_anonymous_sessions_are_signed(platform_settings: Settings) -> None:
    from starlette.responses import Response

    from platform_core.experiments.sub_auth import get_or_create_anonymous_user

    sub = SubAuth.model_validate({**BASE_SUB_AUTH, "strategy": "anonymous_session"})
    name = f"{COOKIE}_anon"

    async def visit(cookies: dict[str, str] | None) -> tuple[str, str | None]:
        response = Response()
        identity = await get_or_create_anonymous_user(fake_request(platform_settings, cookies),
                                                      response, SLUG, sub)  # fmt: skip
        cookie = response.headers.get("set-cookie")
        return identity.user_id, cookie.split(";")[0].split("=", 1)[1] if cookie else None

    import asyncio

    first, token = asyncio.run(visit(None))
    assert first.startswith("guest_") and token and first not in token
    assert asyncio.run(visit({name: token})) == (first, None)  # same id, no new cookie
    # a raw id (the reference's unsigned cookie) or someone's id in a forged value: new id
    for value in (first, token[:-3] + "abc"):
        other, new_token = asyncio.run(visit({name: value}))
        assert other != first and new_token


@pytest.mark.asyncio
async def test_config_edited_without_reload_is_enforced_as_edited(lab: Callable[..., Any]) -> None:
    async with lab() as app, client_for(app) as anon:
        assert (await anon.get(WHOAMI)).status_code == 401
        service = app.state.experiment_service
        await app.state.db["experiments_config"].update_one(
            {"slug": SLUG}, {"$set": {"auth_policy": {"allow_anonymous": True}}}
        )
        service.invalidate(SLUG)  # what save-manifest does; no re-registration
        assert (await anon.get(WHOAMI)).json() == {"kind": None}
