"""Which of these users hold a role? Four strategies with identical answers (report 1.1).

* ``sequential``: one awaited MongoDB ``find_one`` per user, in turn (the report's N+1).
* ``gather``: the same queries, concurrently with ``asyncio.gather``.
* ``in_query``: one ``$in`` query per 100 users.
* ``casbin_memory`` (default): Casbin's in-memory role manager; no database command at
  all, which is why batching saves nothing here (PLATFORM_SPEC 6.1 fact check).

Used by admin seeding; the knob ``role_checks`` picks the strategy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Literal

from platform_core.authz.casbin_provider import CasbinProvider
from platform_core.authz.role_store import MongoRoleStore

RoleCheckStrategy = Literal["sequential", "gather", "in_query", "casbin_memory"]
ROLE_CHECK_STRATEGIES: tuple[RoleCheckStrategy, ...] = (
    "sequential",
    "gather",
    "in_query",
    "casbin_memory",
)


async def check_roles(
    emails: Iterable[str],
    role: str,
    *,
    provider: CasbinProvider,
    store: MongoRoleStore,
    strategy: RoleCheckStrategy = "casbin_memory",
) -> dict[str, bool]:
    """``{email: holds role}`` for every (distinct) email, in input order."""
    unique = list(dict.fromkeys(emails))
    if strategy == "sequential":
        return {email: await store.has_role_for_user(email, role) for email in unique}
    if strategy == "gather":
        answers = await asyncio.gather(*(store.has_role_for_user(e, role) for e in unique))
        return dict(zip(unique, answers, strict=True))
    if strategy == "in_query":
        return await store.has_roles_for_users(unique, role)
    if strategy == "casbin_memory":
        return {email: provider.has_role_for_user_sync(email, role) for email in unique}
    raise ValueError(f"unknown role check strategy {strategy!r}: {ROLE_CHECK_STRATEGIES}")


async def check_admin_roles(
    emails: Iterable[str],
    strategy: RoleCheckStrategy = "casbin_memory",
    *,
    provider: CasbinProvider,
    store: MongoRoleStore,
) -> dict[str, bool]:
    """``{email: holds "admin"}`` using ``strategy``."""
    return await check_roles(emails, "admin", provider=provider, store=store, strategy=strategy)
