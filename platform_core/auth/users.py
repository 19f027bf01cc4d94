"""The ``users`` collection: lookup and creation of platform accounts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from platform_core.auth.models import CurrentUser
from platform_core.auth.passwords import PasswordHasher, password_problem

USERS = "users"
# Deliberately simple: one "@", a dot in the domain, no whitespace. Deliverability is not
# the platform's business; unambiguous, bounded identifiers are.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254


class UserExists(Exception):
    """An account with this email already exists."""


class InvalidUserInput(ValueError):
    """Email or password not acceptable (message is safe to show)."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL_RE.fullmatch(email):
        return "Enter a valid email address"
    return None


def to_current_user(doc: dict[str, Any]) -> CurrentUser:
    return CurrentUser(
        user_id=str(doc["_id"]), email=str(doc["email"]), is_admin=bool(doc.get("is_admin"))
    )


async def find_user(db: Any, email: str) -> dict[str, Any] | None:
    return await db[USERS].find_one({"email": normalize_email(email)})


async def create_user(
    db: Any, hasher: PasswordHasher, email: str, password: str, *, is_admin: bool = False
) -> dict[str, Any]:
    """Insert a new account; raises :class:`InvalidUserInput` or :class:`UserExists`.

    Uniqueness is enforced by the unique index on ``users.email`` (no check-then-insert
    race).
    """
    email = normalize_email(email)
    problem = email_problem(email) or password_problem(password)
    if problem:
        raise InvalidUserInput(problem)
    doc: dict[str, Any] = {
        "email": email,
        "password_hash": await hasher.hash(password),
        "is_admin": is_admin,
        "created_at": datetime.now(UTC),
    }
    try:
        result = await db[USERS].insert_one(doc)
    except DuplicateKeyError:
        raise UserExists(email) from None
    doc["_id"] = result.inserted_id
    return doc
