"""Authorisation: Casbin provider and adapter, decision cache, role checks, admin routes."""

from __future__ import annotations

import math

import httpx
import pytest
from fastapi import FastAPI

from platform_core.auth.models import CurrentUser
from platform_core.authz.adapter import COLLECTION
from platform_core.authz.cache import DecisionCache
from platform_core.authz.casbin_provider import CasbinProvider
from platform_core.authz.provider import AuthzProvider
from platform_core.authz.role_checks import ROLE_CHECK_STRATEGIES, check_admin_roles
from platform_core.authz.role_store import MongoRoleStore
from platform_core.authz.roles import ROLE_POLICIES, assign_role, seed_admin
from platform_core.observability import count_commands
from tests.platform.conftest import ADMIN_EMAIL, client_for, login, make_user, user_client

# --- decision cache -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_ttl_and_lru_eviction() -> None:
    clock = FakeClock()
    cache = DecisionCache(ttl=10, max_size=2, clock=clock)
    cache.put(("a", "r", "x"), True)
    cache.put(("b", "r", "x"), False)
    assert cache.get(("a", "r", "x")) is True  # a is now most recently used
    cache.put(("c", "r", "x"), True)  # evicts b (least recently used)
    assert cache.get(("b", "r", "x")) is None
    assert cache.get(("c", "r", "x")) is True
    assert cache.stats.evictions == 1 and len(cache) == 2
    clock.now = 10.0
    assert cache.get(("a", "r", "x")) is None  # expired
    assert cache.stats.expired == 1
    cache.clear()
    assert len(cache) == 0


def test_cache_ttl_zero_disables_caching() -> None:
    cache = DecisionCache(ttl=0, max_size=5)
    cache.put(("a", "r", "x"), True)
    assert cache.get(("a", "r", "x")) is None


# --- provider + adapter -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_provider_persists_incrementally_and_reloads(db) -> None:  # type: ignore[no-untyped-def]
    provider = await CasbinProvider.create(db)
    assert isinstance(provider, AuthzProvider)
    with count_commands() as counted:
        assert await provider.add_policy("developer", "experiments", "view")
    assert counted.total == 1  # one upsert: no rewrite of the collection
    assert not await provider.add_policy("developer", "experiments", "view")  # already there
    with count_commands() as counted:
        assert await provider.add_role_for_user("d@example.com", "developer")
    assert counted.total == 1
    assert await db[COLLECTION].count_documents({}) == 2

    again = await CasbinProvider.create(db)
    assert await again.check("d@example.com", "experiments", "view")
    assert not await again.check("d@example.com", "experiments", "manage_own")
    assert await again.has_role_for_user("d@example.com", "developer")
    assert await again.get_roles_for_user("d@example.com") == ["developer"]

    with count_commands() as counted:
        assert await again.remove_role_for_user("d@example.com", "developer")
    assert counted.total == 1
    assert not await again.check("d@example.com", "experiments", "view")
    assert await db[COLLECTION].count_documents({"ptype": "g"}) == 0
    assert not await again.remove_role_for_user("d@example.com", "developer")


@pytest.mark.asyncio
async def test_checks_are_in_memory_and_cached(db) -> None:  # type: ignore[no-untyped-def]
    provider = await CasbinProvider.create(db)
    await provider.add_policy("admin", "admin_panel", "access")
    await provider.add_role_for_user("a@example.com", "admin")
    with count_commands() as counted:
        for _ in range(5):
            assert await provider.check("a@example.com", "admin_panel", "access")
            assert not await provider.check("anonymous", "admin_panel", "access")
    assert counted.total == 0
    assert provider.cache.stats.hits == 8 and provider.cache.stats.misses == 2


@pytest.mark.asyncio
async def test_role_change_clears_cache_immediately(db) -> None:  # type: ignore[no-untyped-def]
    provider = await CasbinProvider.create(db, cache_ttl_seconds=3600)
    await provider.add_policy("developer", "experiments", "manage_own")
    assert not await provider.check("x@example.com", "experiments", "manage_own")  # cached
    await provider.add_role_for_user("x@example.com", "developer")
    assert await provider.check("x@example.com", "experiments", "manage_own")  # cached
    await provider.remove_role_for_user("x@example.com", "developer")
    assert not await provider.check("x@example.com", "experiments", "manage_own")
    await provider.add_role_for_user("x@example.com", "developer")
    await provider.remove_policy("developer", "experiments", "manage_own")
    assert not await provider.check("x@example.com", "experiments", "manage_own")


@pytest.mark.asyncio
async def test_concurrent_adds_from_two_providers_are_idempotent(db) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    one = await CasbinProvider.create(db)
    two = await CasbinProvider.create(db)
    await asyncio.gather(
        one.add_role_for_user("c@example.com", "developer"),
        two.add_role_for_user("c@example.com", "developer"),
    )
    assert await db[COLLECTION].count_documents({"ptype": "g", "v0": "c@example.com"}) == 1


# --- role checks: four strategies, same answers ----------------------------------------------


@pytest.mark.asyncio
async def test_role_check_strategies_agree_and_cost_what_they_claim(db) -> None:  # type: ignore[no-untyped-def]
    provider = await CasbinProvider.create(db)
    emails = [f"user{i}@example.com" for i in range(230)]
    admins = set(emails[::7]) | {emails[-1]}
    for email in sorted(admins):
        await provider.add_role_for_user(email, "admin")
    await provider.add_role_for_user(emails[1], "developer")  # another role: not admin
    store = MongoRoleStore(db)
    expected = {e: e in admins for e in emails}
    costs = {}
    for strategy in ROLE_CHECK_STRATEGIES:
        with count_commands() as counted:
            answer = await check_admin_roles(
                [*emails, emails[0]], strategy, provider=provider, store=store
            )
        assert answer == expected, strategy
        assert list(answer) == emails  # input order, duplicates folded
        costs[strategy] = counted.total
    assert costs == {
        "sequential": len(emails),
        "gather": len(emails),
        "in_query": math.ceil(len(emails) / 100),
        "casbin_memory": 0,
    }


@pytest.mark.asyncio
async def test_role_store_chunk_limit(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        MongoRoleStore(db, chunk_size=101)
    store = MongoRoleStore(db, chunk_size=10)
    assert await store.has_roles_for_users([], "admin") == {}


# --- seeding ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_seeding_is_complete_and_idempotent(app: FastAPI) -> None:
    authz = app.state.authz
    report = app.state.seed_report
    assert report.admin_created == ADMIN_EMAIL
    for role, policies in ROLE_POLICIES.items():
        for resource, action in policies:
            assert await authz.has_policy(role, resource, action), (role, resource, action)
    assert await authz.has_role_for_user(ADMIN_EMAIL, "admin")
    rows = await app.state.db[COLLECTION].count_documents({})

    # An is_admin account without the role (e.g. created by a script) is repaired, and a
    # second run creates no second admin and rewrites nothing.
    await make_user(app, "second-admin@example.com", is_admin=True)
    for strategy in ROLE_CHECK_STRATEGIES:
        again = await seed_admin(
            app.state.db, authz, app.state.password_hasher, app.state.settings, strategy=strategy
        )
        assert again.admin_created is None and again.policies_added == 0
    assert await authz.has_role_for_user("second-admin@example.com", "admin")
    assert await app.state.db[COLLECTION].count_documents({}) == rows + 1
    assert await app.state.db.users.count_documents({"is_admin": True}) == 2


@pytest.mark.asyncio
async def test_seeding_never_promotes_an_existing_non_admin(app: FastAPI) -> None:
    db = app.state.db
    await db.users.delete_many({})
    await make_user(app, ADMIN_EMAIL, "whatever-pass-1")  # squatter, not admin
    report = await seed_admin(db, app.state.authz, app.state.password_hasher, app.state.settings)
    assert report.admin_created is None and report.admins == []
    assert (await db.users.find_one({"email": ADMIN_EMAIL}))["is_admin"] is False


# --- access to the admin routes owned here ----------------------------------------------------

ADMIN_API = [
    ("GET", "/admin/api/users", None),
    ("POST", "/admin/api/users/create", {"email": "z@example.com", "password": "12345678"}),
    ("POST", "/admin/api/users/x@example.com/roles/developer", None),
    ("DELETE", "/admin/api/users/x@example.com/roles/developer", None),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("roles", [[], ["user"], ["developer"], ["demo"]])
async def test_admin_routes_refuse_non_admins(app: FastAPI, roles: list[str]) -> None:
    async with client_for(app) as anonymous:
        for method, path, body in ADMIN_API:
            r = await anonymous.request(method, path, json=body)
            assert r.status_code == 401, (method, path)
            assert r.json()["status"] == "error"
        page = await anonymous.get("/admin/users")
        assert page.status_code == 307
        assert page.headers["location"] == "/auth/login?next=%2Fadmin%2Fusers"
    async with user_client(app, "someone@example.com", roles=roles) as client:
        for method, path, body in ADMIN_API:
            r = await client.request(method, path, json=body)
            assert r.status_code == 403, (method, path)
        page = await client.get("/admin/users")
        assert page.status_code == 403 and "text/html" in page.headers["content-type"]
    assert await app.state.db.users.count_documents({"email": "z@example.com"}) == 0


@pytest.mark.asyncio
async def test_admin_token_claim_alone_grants_nothing(app: FastAPI) -> None:
    """A valid token claiming is_admin for an account without the admin role is refused."""
    doc = await make_user(app, "claims@example.com")
    token = app.state.token_codec.encode(
        CurrentUser(user_id=str(doc["_id"]), email="claims@example.com", is_admin=True)
    )
    async with client_for(app, cookies={"token": token}) as client:
        assert (await client.get("/admin/api/users")).status_code == 403


@pytest.mark.asyncio
async def test_list_and_create_users(app: FastAPI, admin_http: httpx.AsyncClient) -> None:
    r = await admin_http.post(
        "/admin/api/users/create",
        json={"email": "Dev@Example.com", "password": "dev-pass-123", "role": "developer"},
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"status": "ok", "email": "dev@example.com", "roles": ["developer"]}
    assert (await admin_http.post(
        "/admin/api/users/create", json={"email": "dev@example.com", "password": "dev-pass-123"}
    )).status_code == 409  # fmt: skip
    short = await admin_http.post(
        "/admin/api/users/create", json={"email": "s@example.com", "password": "1234567"}
    )
    assert short.status_code == 400 and "8" in short.json()["detail"]
    bad_role = await admin_http.post(
        "/admin/api/users/create",
        json={"email": "r@example.com", "password": "12345678", "role": "admin"},
    )
    assert bad_role.status_code == 422 and bad_role.json()["status"] == "error"
    extra = await admin_http.post(
        "/admin/api/users/create",
        json={"email": "e@example.com", "password": "12345678", "is_admin": True},
    )
    assert extra.status_code == 422

    listing = (await admin_http.get("/admin/api/users")).json()
    by_email = {u["email"]: u for u in listing["users"]}
    assert by_email["dev@example.com"]["roles"] == ["developer"]
    assert by_email[ADMIN_EMAIL]["protected"] is True
    assert listing["count"] == 2
    assert (await admin_http.get("/admin/api/users", params={"limit": 0})).status_code == 422
    assert (await admin_http.get("/admin/api/users", params={"limit": 1})).json()["count"] == 1

    # The new developer can log in and use developer pages.
    async with client_for(app) as dev:
        await login(dev, "dev@example.com", "dev-pass-123")
        assert (await dev.get("/my-experiments")).status_code == 200

    page = await admin_http.get("/admin/users")
    assert page.status_code == 200 and "dev@example.com" in page.text


@pytest.mark.asyncio
async def test_grant_and_revoke_roles(app: FastAPI, admin_http: httpx.AsyncClient) -> None:
    await make_user(app, "u@example.com", "user-pass-123")
    async with client_for(app) as user:
        await login(user, "u@example.com", "user-pass-123")
        assert (await user.get("/my-experiments")).status_code == 403

        r = await admin_http.post("/admin/api/users/u@example.com/roles/developer")
        assert r.status_code == 200 and r.json()["changed"] is True
        assert r.json()["roles"] == ["developer"]
        assert (await user.get("/my-experiments")).status_code == 200  # no stale cache
        again = await admin_http.post("/admin/api/users/U@example.com/roles/developer")
        assert again.json()["changed"] is False

        r = await admin_http.delete("/admin/api/users/u@example.com/roles/developer")
        assert r.status_code == 200 and r.json()["roles"] == []
        assert (await user.get("/my-experiments")).status_code == 403

    assert (
        await admin_http.get("/admin/api/users/u@example.com/roles/developer")
    ).status_code == 405
    assert (await admin_http.post("/admin/api/users/u@example.com/roles/admin")).status_code == 400
    assert (await admin_http.post("/admin/api/users/u@example.com/roles/demo")).status_code == 400
    assert (
        await admin_http.post("/admin/api/users/nobody@example.com/roles/user")
    ).status_code == 404


@pytest.mark.asyncio
async def test_protected_accounts(app: FastAPI, admin_http: httpx.AsyncClient) -> None:
    await make_user(app, "demo@example.com", roles=["demo"])
    for method in ("POST", "DELETE"):
        for email in (ADMIN_EMAIL, "demo@example.com"):
            r = await admin_http.request(method, f"/admin/api/users/{email}/roles/user")
            assert r.status_code == 403, (method, email)
    assert await app.state.authz.get_roles_for_user("demo@example.com") == ["demo"]


@pytest.mark.asyncio
async def test_only_admins_may_grant_developer(app: FastAPI) -> None:
    await make_user(app, "target@example.com")
    dev = await make_user(app, "dev2@example.com", roles=["developer"])
    actor = CurrentUser(user_id=str(dev["_id"]), email="dev2@example.com", is_admin=False)
    from platform_core.authz.roles import RoleChangeError

    with pytest.raises(RoleChangeError) as info:
        await assign_role(app.state.db, app.state.authz, actor, "target@example.com", "developer")
    assert info.value.status_code == 403
    # "user" is not restricted to admins at the service level.
    assert await assign_role(app.state.db, app.state.authz, actor, "target@example.com", "user")


@pytest.mark.asyncio
async def test_concurrent_seeding_creates_one_admin(app: FastAPI) -> None:
    """Several workers start at once on an empty database: one admin, no error."""
    import asyncio

    db = app.state.db
    await db.users.delete_many({})
    await db[COLLECTION].delete_many({})
    providers = [await CasbinProvider.create(db) for _ in range(3)]
    reports = await asyncio.gather(
        *(seed_admin(db, p, app.state.password_hasher, app.state.settings) for p in providers)
    )
    assert sum(r.admin_created is not None for r in reports) == 1
    assert await db.users.count_documents({"is_admin": True}) == 1
    fresh = await CasbinProvider.create(db)
    assert await fresh.has_role_for_user(ADMIN_EMAIL, "admin")
    assert await db[COLLECTION].count_documents({"ptype": "g", "v0": ADMIN_EMAIL}) == 1
