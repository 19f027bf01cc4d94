"""Every FastAPI dependency of the platform core, in one place.

Routes declare what they need (``Depends(require_admin)``...) and never read
``app.state`` themselves, so tests and later knobs can swap the pieces behind them.

Anonymous callers of a protected route get a 401 JSON answer on API paths (see
:func:`platform_core.errors.is_api_path`), a 307 redirect to the login page for page views
(GET/HEAD elsewhere) and a 401 error page for other methods (a 307 would replay the body);
the redirect target goes through :func:`platform_core.auth.redirects.login_redirect_url`,
so only a same-site path can ever come back as ``next``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from platform_core.auth.models import CurrentUser
from platform_core.auth.redirects import login_redirect_url
from platform_core.auth.tokens import COOKIE_NAME, TokenCodec
from platform_core.authz.provider import AuthzProvider
from platform_core.errors import wants_json
from platform_core.settings import Settings

# Resources and actions the platform checks (PLATFORM_SPEC 2.9).
ADMIN_PANEL = ("admin_panel", "access")
MANAGE_OWN = ("experiments", "manage_own")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_platform_db(request: Request) -> Any:
    """The unscoped platform database (users, experiments_config, export_logs, casbin_rule)."""
    return request.app.state.db


def get_authz(request: Request) -> AuthzProvider:
    return request.app.state.authz


def get_token_codec(request: Request) -> TokenCodec:
    return request.app.state.token_codec


async def get_current_user(request: Request) -> CurrentUser | None:
    """The user of a valid ``token`` cookie, else ``None``. Never raises.

    Decoded once per request and kept on ``request.state`` (several dependencies of one
    request ask for it).
    """
    cached = getattr(request.state, "current_user", _MISSING)
    if cached is not _MISSING:
        return cached
    user: CurrentUser | None = None
    token = request.cookies.get(COOKIE_NAME)
    if token:
        codec: TokenCodec | None = getattr(request.app.state, "token_codec", None)
        if codec is not None:
            user = codec.decode(token)
    request.state.current_user = user
    return user


_MISSING = object()


def login_required_error(request: Request) -> HTTPException:
    """The answer to an anonymous caller of a protected route (for other modules to reuse)."""
    # Only page views are redirected: a 307 would replay a POST body at the login form.
    if wants_json(request) or request.method not in ("GET", "HEAD"):
        return HTTPException(
            status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Cookie"}
        )
    return HTTPException(status_code=307, headers={"Location": login_redirect_url(request)})


async def require_user(
    request: Request, user: Annotated[CurrentUser | None, Depends(get_current_user)]
) -> CurrentUser:
    """A logged-in user; anonymous → 307 to ``/auth/login?next=...`` for page views (GET/HEAD
    outside API paths), else 401."""
    if user is None:
        raise login_required_error(request)
    return user


async def require_admin(
    user: Annotated[CurrentUser, Depends(require_user)],
    authz: Annotated[AuthzProvider, Depends(get_authz)],
) -> CurrentUser:
    """Holder of ``admin_panel:access`` (asked of the provider, never the token claim)."""
    if not await authz.check(user.email, *ADMIN_PANEL):
        raise HTTPException(status_code=403, detail="Administrator access required")
    return user


async def require_admin_or_developer(
    user: Annotated[CurrentUser, Depends(require_user)],
    authz: Annotated[AuthzProvider, Depends(get_authz)],
) -> CurrentUser:
    """An admin, or a holder of ``experiments:manage_own`` (developers)."""
    if await authz.check(user.email, *ADMIN_PANEL):
        return user
    if await authz.check(user.email, *MANAGE_OWN):
        return user
    raise HTTPException(status_code=403, detail="Developer or administrator access required")


async def is_admin(authz: AuthzProvider, user: CurrentUser | None) -> bool:
    """Convenience for handlers that adapt their output to admins (no exception)."""
    return user is not None and await authz.check(user.email, *ADMIN_PANEL)


# Annotated aliases so routes read ``user: AdminUser`` instead of repeating Depends(...).
SettingsDep = Annotated[Settings, Depends(get_settings)]
PlatformDB = Annotated[Any, Depends(get_platform_db)]
Authz = Annotated[AuthzProvider, Depends(get_authz)]
OptionalUser = Annotated[CurrentUser | None, Depends(get_current_user)]
LoggedInUser = Annotated[CurrentUser, Depends(require_user)]
AdminUser = Annotated[CurrentUser, Depends(require_admin)]
AdminOrDeveloper = Annotated[CurrentUser, Depends(require_admin_or_developer)]
