"""Roles, their policies, admin seeding and role management (PLATFORM_SPEC 2.9, 2.13, 3).

Seeding writes only what is missing, one row at a time: no final ``save_policy`` rewrite
(the reference re-saved every rule after incremental adds that were already persisted).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from platform_core.auth.models import CurrentUser
from platform_core.auth.passwords import PasswordHasher
from platform_core.auth.users import USERS, UserExists, create_user, find_user, normalize_email
from platform_core.authz.casbin_provider import CasbinProvider
from platform_core.authz.role_checks import RoleCheckStrategy, check_admin_roles
from platform_core.authz.role_store import MongoRoleStore
from platform_core.settings import Settings

log = logging.getLogger(__name__)

ROLE_POLICIES: dict[str, tuple[tuple[str, str], ...]] = {
    "admin": (("admin_panel", "access"),),
    "developer": (("experiments", "view"), ("experiments", "manage_own")),
    "demo": (("experiments", "view"),),
    "user": (),
}
# Roles an admin may grant or revoke through the UI/API.
ASSIGNABLE_ROLES = ("developer", "user")
# Accounts holding these roles cannot be edited through the UI/API.
PROTECTED_ROLES = ("admin", "demo")


class StartupRefused(RuntimeError):
    """The platform must not start with this configuration (message says why and how)."""


def check_startup_safety(settings: Settings) -> None:
    """Refuse production with the well-known default admin password (PLATFORM_SPEC 8.14)."""
    if settings.environment != "production":
        return
    if settings.default_admin_password:
        raise StartupRefused(
            "refusing to start in production with the default admin password: set "
            "ADMIN_PASSWORD to a strong secret (or ENVIRONMENT=development for local use)"
        )
    if len(settings.admin_password) < 12:
        raise StartupRefused(
            "refusing to start in production: ADMIN_PASSWORD must have at least 12 characters"
        )


async def seed_role_policies(provider: CasbinProvider) -> int:
    """Make sure every role's policies exist; returns how many rules were added."""
    added = 0
    for role, policies in ROLE_POLICIES.items():
        for resource, action in policies:
            if await provider.add_policy(role, resource, action):
                added += 1
    return added


@dataclass(slots=True)
class SeedReport:
    policies_added: int = 0
    admin_created: str | None = None
    admins: list[str] = field(default_factory=list)
    roles_added: list[str] = field(default_factory=list)


async def seed_admin(
    db: Any,
    provider: CasbinProvider,
    hasher: PasswordHasher,
    settings: Settings,
    *,
    strategy: RoleCheckStrategy = "casbin_memory",
) -> SeedReport:
    """Policies, the first admin (if there is none) and the ``admin`` role of every admin."""
    report = SeedReport(policies_added=await seed_role_policies(provider))
    users = db[USERS]
    admins = [doc["email"] async for doc in users.find({"is_admin": True}, {"email": 1})]
    if not admins:
        email = normalize_email(settings.admin_email)
        try:
            await create_user(db, hasher, email, settings.admin_password, is_admin=True)
            report.admin_created = email
            log.info("created the first admin account %s", email)
        except UserExists:
            # Another worker won the race, or a NON-admin account already uses this email:
            # never promote an existing account silently.
            existing = await find_user(db, email)
            if not (existing and existing.get("is_admin")):
                log.error(
                    "ADMIN_EMAIL %s belongs to an existing non-admin account; no admin seeded",
                    email,
                )
        admins = [doc["email"] async for doc in users.find({"is_admin": True}, {"email": 1})]
    report.admins = admins
    store = MongoRoleStore(db)
    holds = await check_admin_roles(admins, strategy, provider=provider, store=store)
    for email, has_role in holds.items():
        if not has_role and await provider.add_role_for_user(email, "admin"):
            report.roles_added.append(email)
    return report


class RoleChangeError(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


async def _check_change(
    db: Any, provider: CasbinProvider, actor: CurrentUser, email: str, role: str
) -> str:
    if role not in ASSIGNABLE_ROLES:
        raise RoleChangeError(
            400, f"Only these roles can be changed: {', '.join(ASSIGNABLE_ROLES)}"
        )
    email = normalize_email(email)
    target = await find_user(db, email)
    if target is None:
        raise RoleChangeError(404, "User not found")
    if target.get("is_admin"):
        raise RoleChangeError(403, "Administrator accounts cannot be edited here")
    roles = await provider.get_roles_for_user(email)
    if any(r in PROTECTED_ROLES for r in roles):
        raise RoleChangeError(403, "This account is protected (admin or demo role)")
    if role == "developer" and not await provider.check(actor.email, "admin_panel", "access"):
        raise RoleChangeError(403, "Only administrators may grant or revoke the developer role")
    return email


async def assign_role(
    db: Any, provider: CasbinProvider, actor: CurrentUser, email: str, role: str
) -> bool:
    """Grant ``role``; False if the user already had it."""
    email = await _check_change(db, provider, actor, email, role)
    return await provider.add_role_for_user(email, role)


async def remove_role(
    db: Any, provider: CasbinProvider, actor: CurrentUser, email: str, role: str
) -> bool:
    """Revoke ``role``; False if the user did not have it."""
    email = await _check_change(db, provider, actor, email, role)
    return await provider.remove_role_for_user(email, role)
