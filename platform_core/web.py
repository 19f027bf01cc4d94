"""HTML rendering helpers shared by every page of the platform (and usable by plug-ins).

Templates live in ``platform_core/templates``; ``base.html`` needs ``user``,
``is_admin`` and ``can_manage`` for its navigation, which :func:`render` fills in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from platform_core.settings import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"
TemplateCache = Literal["fs_bytecode_cache", "none"]
TEMPLATE_CACHES: tuple[TemplateCache, ...] = ("fs_bytecode_cache", "none")


def build_templates(
    settings: Settings, bytecode_cache: TemplateCache = "fs_bytecode_cache"
) -> Jinja2Templates:
    """The platform's template engine.

    ``fs_bytecode_cache`` keeps compiled templates in ``DATA_DIR/jinja_cache`` so a fresh
    process (or worker) skips parsing them on first render (report 2.3); ``none`` is the
    baseline. Within a process Jinja's in-memory cache applies either way.
    """
    if bytecode_cache not in TEMPLATE_CACHES:
        raise ValueError(f"unknown template cache {bytecode_cache!r}: {TEMPLATE_CACHES}")
    cache = None
    if bytecode_cache == "fs_bytecode_cache":
        directory = Path(settings.data_dir) / "jinja_cache"
        directory.mkdir(parents=True, exist_ok=True)
        cache = FileSystemBytecodeCache(str(directory))
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(("html", "htm", "xml"), default_for_string=True),
        bytecode_cache=cache,
        auto_reload=True,
    )
    return Jinja2Templates(env=env)


async def nav_context(request: Request) -> dict[str, Any]:
    """``user``/``is_admin``/``can_manage`` for the navigation bar (authz, not the claim)."""
    from platform_core.deps import ADMIN_PANEL, MANAGE_OWN, get_current_user

    user = await get_current_user(request)
    authz = getattr(request.app.state, "authz", None)
    admin = manage = False
    if user is not None and authz is not None:
        admin = await authz.check(user.email, *ADMIN_PANEL)
        manage = admin or await authz.check(user.email, *MANAGE_OWN)
    return {"user": user, "is_admin": admin, "can_manage": manage}


async def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    ctx = await nav_context(request)
    ctx.update(context or {})
    return request.app.state.templates.TemplateResponse(
        request, name, ctx, status_code=status_code, headers=headers
    )
