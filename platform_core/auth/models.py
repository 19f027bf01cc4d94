"""Who is making a request, as the rest of the platform sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """A platform user decoded from a valid session token.

    ``is_admin`` mirrors the token claim and is informational only: authorisation
    decisions always ask the authz provider (PLATFORM_SPEC 8.13: the claim must not grant
    access on its own).
    """

    user_id: str
    email: str
    is_admin: bool
