"""``data_scope``: which experiments' data an experiment may read (spec 2.4, 8.7).

``"self"`` means the experiment's own slug. Listing another slug is checked when a
manifest is written (save-manifest, upload), where the writer is known:

* admins may list any existing experiment;
* anyone else may list only experiments they own (``owner_email``) — the reference let a
  developer list any slug and then read, update and delete its data (spec 8.7).

At registration the resolved scopes keep only slugs that still exist. Reading another
experiment's collections is read-only in the scoped layer (``ScopedDatabase``), so a
granted scope never allows modifying the other experiment's documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from platform_core.db.slugs import validate_slug


class DataScopeError(PermissionError):
    """A ``data_scope`` entry the writer may not grant (message names the slugs)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def resolve_read_scopes(slug: str, data_scope: Iterable[str] | None) -> tuple[str, ...]:
    """``data_scope`` with ``"self"`` replaced by ``slug``; own slug first, no duplicates."""
    validate_slug(slug)
    scopes: list[str] = [slug]
    for entry in data_scope or ["self"]:
        name = slug if entry == "self" else validate_slug(entry)
        if name not in scopes:
            scopes.append(name)
    return tuple(scopes)


async def check_data_scope(
    config_cache: Any,
    slug: str,
    data_scope: Iterable[str] | None,
    *,
    user_email: str | None,
    is_admin: bool,
) -> tuple[str, ...]:
    """Validate a manifest's ``data_scope`` for its writer; returns the resolved scopes."""
    resolved = resolve_read_scopes(slug, data_scope)
    others = [s for s in resolved if s != slug]
    if not others:
        return resolved
    configs = await config_cache.get_many(others)
    missing = [s for s in others if s not in configs]
    if missing:
        raise DataScopeError(f"data_scope lists unknown experiments: {missing}", status=400)
    if not is_admin:
        email = (user_email or "").lower()
        foreign = [s for s in others if (configs[s].get("owner_email") or "").lower() != email]
        if foreign:
            raise DataScopeError(
                f"data_scope may only list experiments you own; not yours: {foreign}"
            )
    return resolved
