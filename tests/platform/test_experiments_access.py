"""``require_experiment_access``: the decision order of PLATFORM_SPEC 2.9, as behaviour."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from platform_core.auth.models import CurrentUser
from platform_core.experiments.access import decide_access
from tests.platform.conftest import client_for, login, make_user


class FakeAuthz:
    """Roles per user; permissions per role (the Casbin model, in memory)."""

    def __init__(self, roles: dict[str, list[str]], perms: dict[str, list[tuple[str, str]]]):
        self.roles = roles
        self.perms = perms
        self.calls: list[tuple[str, ...]] = []

    async def check(
        self, subject: str, resource: str, action: str, user_object: Any = None
    ) -> bool:
        self.calls.append((subject, resource, action))
        return any((resource, action) in self.perms.get(r, []) for r in self.roles.get(subject, []))

    async def has_role_for_user(self, user: str, role: str) -> bool:
        return role in self.roles.get(user, [])


AUTHZ = FakeAuthz(
    roles={"admin@x.io": ["admin"], "dev@x.io": ["developer"], "reader@x.io": ["reader"]},
    perms={"admin": [("admin_panel", "access")],
           "developer": [("experiments", "view"), ("experiments", "manage_own")],
           "reader": [("reports", "read"), ("experiment:shop", "read")]},
)  # fmt: skip


def user(email: str) -> CurrentUser:
    return CurrentUser(user_id="1", email=email, is_admin=False)


async def decide(config: dict[str, Any] | None, who: str | None) -> tuple[bool, int, str]:
    d = await decide_access("shop", config, user(who) if who else None, AUTHZ)
    return d.allowed, d.status, d.reason


@pytest.mark.asyncio
async def test_admin_bypasses_everything_even_denials() -> None:
    cfg = {"auth_policy": {"denied_users": ["admin@x.io"], "allowed_users": ["x@x.io"]}}
    assert await decide(cfg, "admin@x.io") == (True, 200, "admin")
    assert (await decide(None, "admin@x.io"))[0] is True


@pytest.mark.asyncio
async def test_missing_config_is_404() -> None:
    assert (await decide(None, "dev@x.io"))[1] == 404
    assert (await decide(None, None))[1] == 404


@pytest.mark.asyncio
async def test_legacy_auth_required() -> None:
    assert (await decide({"auth_required": True}, None))[1] == 401
    assert (await decide({"auth_required": True}, "nobody@x.io"))[0] is True
    assert (await decide({"auth_required": False}, None))[0] is True
    assert (await decide({}, None))[0] is True


@pytest.mark.asyncio
async def test_anonymous_only_with_allow_anonymous() -> None:
    assert (await decide({"auth_policy": {}}, None))[1] == 401
    assert (await decide({"auth_policy": {"required": False}}, None))[1] == 401
    assert (await decide({"auth_policy": {"allow_anonymous": True}}, None))[0] is True
    # auth_policy takes precedence over auth_required
    cfg = {"auth_required": True, "auth_policy": {"required": False, "allow_anonymous": True}}
    assert (await decide(cfg, None))[0] is True


@pytest.mark.asyncio
async def test_owner_shortcut_uses_owner_email_and_precedes_lists() -> None:
    cfg = {"owner_email": "own@x.io", "auth_policy": {"denied_users": ["own@x.io"],
                                                      "allowed_roles": ["nope"]}}  # fmt: skip
    assert await decide(cfg, "own@x.io") == (True, 200, "owner")
    cfg["auth_policy"]["owner_can_access"] = False
    assert (await decide(cfg, "own@x.io"))[1] == 403
    legacy = {"developer_id": "own@x.io", "auth_policy": {"allowed_users": ["z@x.io"]}}
    assert (await decide(legacy, "own@x.io"))[0] is True


@pytest.mark.asyncio
async def test_denied_then_whitelist_decides_alone() -> None:
    cfg = {"auth_policy": {"denied_users": ["bad@x.io"], "allowed_users": ["Good@x.io"],
                           "allowed_roles": ["admin"], "required_permissions": ["x:y"]}}  # fmt: skip
    assert (await decide(cfg, "bad@x.io"))[1] == 403
    assert await decide(cfg, "good@x.io") == (True, 200, "allowed user")  # roles/perms skipped
    assert (await decide(cfg, "dev@x.io"))[1] == 403


@pytest.mark.asyncio
async def test_roles_permissions_and_custom_actions() -> None:
    roles = {"auth_policy": {"allowed_roles": ["developer"]}}
    assert (await decide(roles, "dev@x.io"))[0] is True
    assert (await decide(roles, "reader@x.io"))[1] == 403
    by_permission = {"auth_policy": {"allowed_roles": ["view"]}}  # experiments:<role>
    assert (await decide(by_permission, "dev@x.io"))[0] is True

    perms = {"auth_policy": {"required_permissions": ["reports:read", "view"]}}
    assert (await decide(perms, "reader@x.io"))[1] == 403  # lacks experiments:view
    perms = {"auth_policy": {"required_permissions": ["reports:read"]}}
    assert (await decide(perms, "reader@x.io"))[0] is True

    custom = {
        "auth_policy": {"custom_resource": "experiment:shop", "custom_actions": ["write", "read"]}
    }
    assert (await decide(custom, "reader@x.io"))[0] is True
    assert (await decide(custom, "dev@x.io"))[1] == 403
    default_action = {"auth_policy": {"custom_resource": "experiment:shop"}}
    assert (await decide(default_action, "reader@x.io"))[1] == 403  # needs "access"


@pytest.mark.asyncio
async def test_http_policy_of_the_analytics_sample(
    app: FastAPI, http: Any, admin_http: Any
) -> None:
    """analytics: auth_policy.allowed_roles = [developer, admin]."""
    assert (await http.get("/experiments/analytics/api/summary")).status_code == 401
    page = await http.get("/experiments/analytics/")
    assert page.status_code == 307 and "/auth/login" in page.headers["location"]
    await make_user(app, "plain@example.com", "user-pass-123")
    await make_user(app, "dev@example.com", "user-pass-123", roles=["developer"])
    async with client_for(app) as plain, client_for(app) as dev:
        await login(plain, "plain@example.com", "user-pass-123")
        await login(dev, "dev@example.com", "user-pass-123")
        assert (await plain.get("/experiments/analytics/api/summary")).status_code == 403
        assert (await dev.get("/experiments/analytics/api/summary")).status_code == 200
    assert (await admin_http.get("/experiments/analytics/api/summary")).status_code == 200


@pytest.mark.asyncio
async def test_http_denied_user_on_catalog(app: FastAPI, http: Any) -> None:
    assert (await http.get("/experiments/catalog/api/categories")).status_code == 200
    await make_user(app, "blocked@example.com", "user-pass-123")
    async with client_for(app) as blocked:
        await login(blocked, "blocked@example.com", "user-pass-123")
        r = await blocked.get("/experiments/catalog/api/categories")
        assert r.status_code == 403 and r.json()["status"] == "error"
