"""The authorisation provider protocol (PLATFORM_SPEC 2.9).

Routes and dependencies depend on this protocol only; Casbin is the implementation
(``platform_core.authz.casbin_provider``) and others (Oso...) can be added behind it.
Unlike the reference, every method is part of the protocol (no ``hasattr`` probing) and
no implementation may fail open.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class AuthzProvider(Protocol):
    async def check(
        self, subject: str, resource: str, action: str, user_object: dict[str, Any] | None = None
    ) -> bool:
        """May ``subject`` (an email, or ``"anonymous"``) perform ``action`` on ``resource``?"""

    async def add_policy(self, role: str, resource: str, action: str) -> bool: ...

    async def has_policy(self, role: str, resource: str, action: str) -> bool: ...

    async def add_role_for_user(self, user: str, role: str) -> bool: ...

    async def remove_role_for_user(self, user: str, role: str) -> bool: ...

    async def has_role_for_user(self, user: str, role: str) -> bool: ...

    async def get_roles_for_user(self, user: str) -> list[str]: ...

    def clear_cache(self) -> None: ...
