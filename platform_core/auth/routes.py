"""Login, logout and registration pages (PLATFORM_SPEC 3, with section 8 fixed).

* ``next`` always goes through :func:`safe_next_url` (no open redirect).
* Logout is POST only: a GET (an ``<img src>`` on any page) cannot log people out.
* Registration exists only when ``ENABLE_REGISTRATION`` is true (404 otherwise).
* Wrong email and wrong password give the same answer in about the same time.
* Per-client rate limits (:mod:`platform_core.ratelimit`): login POST 5/min, GET 20/min;
  register POST 3/min, GET 20/min.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from platform_core.auth.models import CurrentUser
from platform_core.auth.passwords import MIN_PASSWORD_LENGTH, PasswordHasher
from platform_core.auth.redirects import safe_next_url
from platform_core.auth.tokens import COOKIE_NAME, TokenCodec
from platform_core.auth.users import (
    InvalidUserInput,
    UserExists,
    create_user,
    find_user,
    normalize_email,
    to_current_user,
)
from platform_core.deps import PlatformDB, SettingsDep
from platform_core.events import notify
from platform_core.ratelimit import RateLimit
from platform_core.settings import Settings
from platform_core.web import render

log = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])

# Form fields default to "" so a missing field is a friendly 400, not a 422 JSON blob.
FormStr = Annotated[str, Form(max_length=4096)]


def _hasher(request: Request) -> PasswordHasher:
    return request.app.state.password_hasher


def set_session_cookie(
    response: Response, request: Request, settings: Settings, user: CurrentUser
) -> None:
    codec: TokenCodec = request.app.state.token_codec
    response.set_cookie(
        COOKIE_NAME,
        codec.encode(user),
        max_age=codec.lifetime_seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.environment == "production" or request.url.scheme == "https",
    )


def _clear_session_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.environment == "production" or request.url.scheme == "https",
    )


@router.get("/login", include_in_schema=False, dependencies=[Depends(RateLimit("login_page"))])
async def login_page(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    return await render(
        request,
        "login.html",
        {"next": safe_next_url(next), "registration_enabled": settings.enable_registration},
    )


@router.post("/login", include_in_schema=False, dependencies=[Depends(RateLimit("login_post"))])
async def login(
    request: Request,
    settings: SettingsDep,
    db: PlatformDB,
    email: FormStr = "",
    password: FormStr = "",
    next: FormStr = "/",
) -> Response:
    target = safe_next_url(next)
    context = {
        "next": target,
        "email": email,
        "registration_enabled": settings.enable_registration,
    }
    if not email.strip() or not password:
        context["error"] = "Enter your email and password"
        return await render(request, "login.html", context, status_code=400)
    doc = await find_user(db, email)
    ok = await _hasher(request).verify(password, doc.get("password_hash") if doc else None)
    if doc is None or not ok:
        context["error"] = "Invalid email or password"
        return await render(request, "login.html", context, status_code=401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, settings, to_current_user(doc))
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, settings: SettingsDep) -> Response:
    response = RedirectResponse("/", status_code=303)
    _clear_session_cookie(response, request, settings)
    return response


def _require_registration(settings: Settings) -> None:
    if not settings.enable_registration:
        raise HTTPException(status_code=404, detail="Not found")


@router.get(
    "/register", include_in_schema=False, dependencies=[Depends(RateLimit("register_page"))]
)
async def register_page(
    request: Request, settings: SettingsDep, next: str | None = None
) -> Response:
    _require_registration(settings)
    return await render(
        request, "register.html", {"next": safe_next_url(next), "min_password": MIN_PASSWORD_LENGTH}
    )


@router.post(
    "/register", include_in_schema=False, dependencies=[Depends(RateLimit("register_post"))]
)
async def register(
    request: Request,
    settings: SettingsDep,
    db: PlatformDB,
    email: FormStr = "",
    password: FormStr = "",
    next: FormStr = "/",
) -> Response:
    _require_registration(settings)
    target = safe_next_url(next)
    context = {"next": target, "email": email, "min_password": MIN_PASSWORD_LENGTH}
    try:
        # Registered accounts get no role (PLATFORM_SPEC 3): an admin grants one later.
        doc = await create_user(db, _hasher(request), email, password)
    except InvalidUserInput as exc:
        context["error"] = str(exc)
        return await render(request, "register.html", context, status_code=400)
    except UserExists:
        context["error"] = "An account with this email already exists"
        return await render(request, "register.html", context, status_code=409)
    log.info("registered %s", normalize_email(email))
    notify(request.app, "users", reason="registered", email=doc["email"])
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, settings, to_current_user(doc))
    return response
