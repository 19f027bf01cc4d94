"""The Casbin implementation of :class:`~platform_core.authz.provider.AuthzProvider`.

Enforcement is in memory: Casbin's synchronous ``Enforcer`` holds every rule after one
``load_policy`` and answers ``enforce``/``has_role_for_user`` from dictionaries in
microseconds, so it is called directly on the loop (a thread hop would cost more than
the lookup). Writes first go to MongoDB through :class:`AsyncMongoCasbinAdapter`, then to
memory, then the decision cache is cleared, so a failed write changes nothing and a
change is visible to the next check.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from importlib import resources
from typing import Any

import casbin
from casbin.persist.adapter import Adapter

from platform_core.authz.adapter import AsyncMongoCasbinAdapter
from platform_core.authz.cache import DecisionCache

MODEL_RESOURCE = "casbin_model.conf"

# Casbin logs the model and EVERY policy rule (user emails included) at INFO on each load;
# keep that out of the platform's logs unless someone asks for it explicitly.
for _name in ("casbin", "casbin.policy", "casbin.enforcer", "casbin.role_manager"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)


def model_text() -> str:
    return resources.files("platform_core.authz").joinpath(MODEL_RESOURCE).read_text()


class _SnapshotAdapter(Adapter):
    """Feeds rules already read from MongoDB into Casbin's own ``load_policy``."""

    def __init__(self, rules: list[tuple[str, list[str]]]) -> None:
        self._rules = rules

    def load_policy(self, model: Any) -> None:
        seen: set[tuple[str, ...]] = set()
        for ptype, rule in self._rules:
            sec = ptype[0]
            if sec not in model.keys() or ptype not in model[sec]:
                continue  # a row for a policy type this model does not define
            key = (ptype, *rule)
            if key in seen:
                continue
            seen.add(key)
            model[sec][ptype].policy.append(list(rule))


class CasbinProvider:
    """RBAC with Casbin: ``check(subject, resource, action)`` and role/policy management."""

    def __init__(
        self,
        adapter: AsyncMongoCasbinAdapter,
        *,
        cache_ttl_seconds: float = 300.0,
        cache_max_size: int = 1000,
    ) -> None:
        self.adapter = adapter
        self.enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=model_text()))
        self.enforcer.enable_auto_save(False)
        self.cache = DecisionCache(cache_ttl_seconds, cache_max_size)
        # Serialises writes so "check memory, write DB, update memory" is atomic per process.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def create(
        cls, db: Any, *, cache_ttl_seconds: float = 300.0, cache_max_size: int = 1000
    ) -> CasbinProvider:
        adapter = AsyncMongoCasbinAdapter(db)
        await adapter.ensure_indexes()
        provider = cls(adapter, cache_ttl_seconds=cache_ttl_seconds, cache_max_size=cache_max_size)
        await provider.load_policy()
        return provider

    # -- loading ------------------------------------------------------------------------------
    async def load_policy(self) -> None:
        """(Re)load every rule from MongoDB into memory."""
        rules = await self.adapter.load_rules()
        enforcer = self.enforcer
        enforcer.adapter = _SnapshotAdapter(rules)
        try:
            enforcer.load_policy()
        finally:
            enforcer.adapter = None
        self.clear_cache()

    async def save_policy(self) -> None:
        """Rewrite ``casbin_rule`` from memory (explicit resets only; writes are incremental)."""
        rules: list[tuple[str, list[str]]] = []
        for sec in ("p", "g"):
            for ptype, assertion in self.enforcer.model[sec].items():
                rules.extend((ptype, list(rule)) for rule in assertion.policy)
        await self.adapter.save_policy(copy.deepcopy(rules))

    # -- checks ---------------------------------------------------------------------------------
    async def check(
        self, subject: str, resource: str, action: str, user_object: dict[str, Any] | None = None
    ) -> bool:
        key = (subject, resource, action)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        allowed = bool(self.enforcer.enforce(subject, resource, action))
        self.cache.put(key, allowed)
        return allowed

    async def has_policy(self, role: str, resource: str, action: str) -> bool:
        return bool(self.enforcer.has_policy(role, resource, action))

    async def has_role_for_user(self, user: str, role: str) -> bool:
        return bool(self.enforcer.has_role_for_user(user, role))

    def has_role_for_user_sync(self, user: str, role: str) -> bool:
        return bool(self.enforcer.has_role_for_user(user, role))

    async def get_roles_for_user(self, user: str) -> list[str]:
        return list(self.enforcer.get_roles_for_user(user))

    def roles_by_user(self) -> dict[str, list[str]]:
        """Every user's direct roles, from memory (for listing pages)."""
        out: dict[str, list[str]] = {}
        for rule in self.enforcer.get_grouping_policy():
            out.setdefault(rule[0], []).append(rule[1])
        return out

    async def get_users_for_role(self, role: str) -> list[str]:
        return list(self.enforcer.get_users_for_role(role))

    # -- writes ---------------------------------------------------------------------------------
    async def add_policy(self, role: str, resource: str, action: str) -> bool:
        rule = [role, resource, action]
        async with self._write_lock:
            if self.enforcer.has_policy(*rule):
                return False
            await self.adapter.add_policy("p", "p", rule)
            self.enforcer.add_policy(*rule)
            self.clear_cache()
        return True

    async def remove_policy(self, role: str, resource: str, action: str) -> bool:
        rule = [role, resource, action]
        async with self._write_lock:
            if not self.enforcer.has_policy(*rule):
                return False
            await self.adapter.remove_policy("p", "p", rule)
            self.enforcer.remove_policy(*rule)
            self.clear_cache()
        return True

    async def add_role_for_user(self, user: str, role: str) -> bool:
        async with self._write_lock:
            if self.enforcer.has_grouping_policy(user, role):
                return False
            await self.adapter.add_policy("g", "g", [user, role])
            self.enforcer.add_grouping_policy(user, role)
            self.clear_cache()
        return True

    async def remove_role_for_user(self, user: str, role: str) -> bool:
        async with self._write_lock:
            if not self.enforcer.has_grouping_policy(user, role):
                return False
            await self.adapter.remove_policy("g", "g", [user, role])
            self.enforcer.remove_grouping_policy(user, role)
            self.clear_cache()
        return True

    def clear_cache(self) -> None:
        self.cache.clear()
