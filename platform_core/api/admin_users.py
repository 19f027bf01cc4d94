"""User and role management for admins (PLATFORM_SPEC 3, ``/admin/api/users...``).

Every route requires ``admin_panel:access``. State changes are POST/DELETE only (and the
cross-site guard refuses foreign browser origins). Only ``developer`` and ``user`` can be
granted or revoked; accounts with ``is_admin`` or the ``demo`` role are protected.
Each change publishes ``update`` on the ``users`` event stream
(``/admin/api/users/stream``, :mod:`platform_core.api.streams`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from platform_core.auth.users import USERS, InvalidUserInput, UserExists, create_user
from platform_core.authz.roles import (
    ASSIGNABLE_ROLES,
    RoleChangeError,
    assign_role,
    remove_role,
)
from platform_core.deps import AdminUser, Authz, PlatformDB
from platform_core.events import notify
from platform_core.web import render

router = APIRouter(tags=["admin-users"])


class CreateUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=254)
    password: str = Field(max_length=256)
    role: Literal["developer", "user"] = "user"


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


async def _list_users(db: Any, authz: Any, limit: int) -> list[dict[str, Any]]:
    # Roles come from the provider's memory (one pass), not one query per user.
    roles = authz.roles_by_user() if hasattr(authz, "roles_by_user") else None
    users = []
    cursor = db[USERS].find({}, {"email": 1, "is_admin": 1, "created_at": 1}).sort("email", 1)
    async for doc in cursor.limit(limit):
        email = doc["email"]
        user_roles = (
            roles.get(email, []) if roles is not None else await authz.get_roles_for_user(email)
        )
        users.append(
            {
                "email": email,
                "is_admin": bool(doc.get("is_admin")),
                "roles": sorted(user_roles),
                "created_at": _iso(doc.get("created_at")),
                "protected": bool(doc.get("is_admin"))
                or "demo" in user_roles
                or "admin" in user_roles,
            }
        )
    return users


@router.get("/admin/users", include_in_schema=False)
async def users_page(request: Request, db: PlatformDB, authz: Authz, admin: AdminUser) -> Response:
    users = await _list_users(db, authz, 1000)
    return await render(
        request, "admin_users.html", {"users": users, "assignable_roles": ASSIGNABLE_ROLES}
    )


@router.get("/admin/api/users")
async def list_users(
    db: PlatformDB, authz: Authz, admin: AdminUser, limit: int = Query(1000, ge=1, le=10_000)
) -> dict[str, Any]:
    users = await _list_users(db, authz, limit)
    return {"status": "ok", "count": len(users), "users": users}


@router.post("/admin/api/users/create", status_code=201)
async def create_platform_user(
    body: CreateUserBody, db: PlatformDB, authz: Authz, request: Request, admin: AdminUser
) -> JSONResponse:
    try:
        doc = await create_user(db, request.app.state.password_hasher, body.email, body.password)
    except InvalidUserInput as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    except UserExists:
        raise HTTPException(
            status_code=409, detail="An account with this email already exists"
        ) from None
    await authz.add_role_for_user(doc["email"], body.role)
    notify(request.app, "users", reason="created", email=doc["email"])
    return JSONResponse(
        {"status": "ok", "email": doc["email"], "roles": [body.role]}, status_code=201
    )


async def _change_role(
    request: Request, change: Any, db: Any, authz: Any, admin: Any, email: str, role: str
) -> dict[str, Any]:
    try:
        changed = await change(db, authz, admin, email, role)
    except RoleChangeError as exc:
        raise HTTPException(status_code=exc.status_code, detail=exc.detail) from None
    if changed:
        reason = "role_added" if change is assign_role else "role_removed"
        notify(request.app, "users", reason=reason, email=email.strip().lower(), role=role)
    return {
        "status": "ok",
        "changed": changed,
        "email": email.strip().lower(),
        "roles": sorted(await authz.get_roles_for_user(email.strip().lower())),
    }


@router.post("/admin/api/users/{email}/roles/{role}")
async def add_role(
    request: Request, email: str, role: str, db: PlatformDB, authz: Authz, admin: AdminUser
) -> dict[str, Any]:
    return await _change_role(request, assign_role, db, authz, admin, email, role)


@router.delete("/admin/api/users/{email}/roles/{role}")
async def delete_role(
    request: Request, email: str, role: str, db: PlatformDB, authz: Authz, admin: AdminUser
) -> dict[str, Any]:
    return await _change_role(request, remove_role, db, authz, admin, email, role)
