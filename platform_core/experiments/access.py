"""Who may use an experiment: the decision order of ``require_experiment_access`` (spec 2.9).

The order, first match wins:

1. admin (``admin_panel:access`` asked of the provider) → allowed;
2. no config → 404;
3. no ``auth_policy``: ``auth_required`` and anonymous → login; otherwise allowed;
4. with ``auth_policy``: anonymous → allowed only if ``allow_anonymous``, else login;
5. owner shortcut: ``owner_can_access`` and the caller is the config's ``owner_email``
   (the reference compared ``developer_id``, which configs normally do not hold, so its
   shortcut rarely fired; ``developer_id`` is still accepted for seeded legacy configs);
6. ``denied_users`` → 403;
7. ``allowed_users`` non-empty → the whitelist decides alone (listed → allowed, else 403);
8. ``allowed_roles`` → the caller must hold one (role, or ``experiments:<role>``);
9. ``required_permissions`` → every ``"res:act"`` (bare ``act`` = ``experiments:act``);
10. ``custom_resource`` set → at least one of ``custom_actions`` on it;
11. allowed.

The decision is a pure coroutine over (config, user, provider) so it can be tested without
HTTP; :func:`require_experiment_access` wraps it for requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from platform_core.auth.models import CurrentUser
from platform_core.auth.redirects import login_redirect_url
from platform_core.authz.provider import AuthzProvider
from platform_core.errors import wants_json

ADMIN_PANEL = ("admin_panel", "access")


@dataclass(frozen=True, slots=True)
class AccessDecision:
    allowed: bool
    status: int  # 200 allowed, 401 login needed, 403 forbidden, 404 unknown experiment
    reason: str
    user: CurrentUser | None = None
    is_admin: bool = False


def _allow(reason: str, user: CurrentUser | None, is_admin: bool = False) -> AccessDecision:
    return AccessDecision(True, 200, reason, user, is_admin)


def _deny(status: int, reason: str, user: CurrentUser | None) -> AccessDecision:
    return AccessDecision(False, status, reason, user)


async def decide_access(
    slug: str,
    config: dict[str, Any] | None,
    user: CurrentUser | None,
    authz: AuthzProvider,
) -> AccessDecision:
    """Apply the decision order above; never raises for policy reasons."""
    if user is not None and await authz.check(user.email, *ADMIN_PANEL):
        return _allow("admin", user, is_admin=True)
    if config is None:
        return _deny(404, f"experiment {slug!r} not found", user)
    policy = config.get("auth_policy")
    if not isinstance(policy, dict):
        if config.get("auth_required") and user is None:
            return _deny(401, "login required", None)
        return _allow("no policy", user)
    if user is None:
        if policy.get("allow_anonymous", False):
            return _allow("anonymous allowed", None)
        return _deny(401, "login required", None)
    email = user.email.lower()
    owner = (config.get("owner_email") or config.get("developer_id") or "").lower()
    if policy.get("owner_can_access", True) and owner and owner == email:
        return _allow("owner", user)
    if email in {u.lower() for u in policy.get("denied_users") or []}:
        return _deny(403, "access denied for this user", user)
    allowed_users = [u.lower() for u in policy.get("allowed_users") or []]
    if allowed_users:
        if email in allowed_users:
            return _allow("allowed user", user)
        return _deny(403, "not on this experiment's list of allowed users", user)
    roles = policy.get("allowed_roles") or []
    if roles and not await _holds_any_role(authz, email, roles):
        return _deny(403, f"requires one of the roles {roles}", user)
    for permission in policy.get("required_permissions") or []:
        resource, _, action = permission.rpartition(":")
        if not await authz.check(email, resource or "experiments", action):
            return _deny(403, f"missing permission {permission!r}", user)
    resource = policy.get("custom_resource")
    if resource:
        actions = policy.get("custom_actions") or ["access"]
        if not any([await authz.check(email, resource, action) for action in actions]):
            return _deny(403, f"missing access to {resource!r}", user)
    return _allow("policy", user)


async def _holds_any_role(authz: AuthzProvider, email: str, roles: list[str]) -> bool:
    for role in roles:
        if await authz.has_role_for_user(email, role):
            return True
        if await authz.check(email, "experiments", role):
            return True
    return False


def raise_for(decision: AccessDecision, request: Request) -> None:
    """Turn a denial into the platform's HTTP answer (401 JSON / 307 login on HTML)."""
    if decision.allowed:
        return
    if decision.status == 401:
        if wants_json(request):
            raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Cookie"})
        raise HTTPException(307, headers={"Location": login_redirect_url(request)})
    raise HTTPException(decision.status, decision.reason)


async def require_experiment_access(request: Request, slug: str) -> AccessDecision:
    """Load the config (through the config cache) and the user, decide, raise on denial.

    The decision is also kept on ``request.state.experiment_access`` for handlers.
    """
    from platform_core.deps import get_current_user

    service = request.app.state.experiment_service
    user = await get_current_user(request)
    config = await service.config_cache.get(slug, request=request)
    decision = await decide_access(slug, config, user, request.app.state.authz)
    request.state.experiment_access = decision
    raise_for(decision, request)
    return decision
