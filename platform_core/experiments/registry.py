"""The per-slug registry and the one dispatcher route that serves ``/experiments/<slug>``.

The ``routes`` knob (report 7.1, spec 6.14):

``"replace"`` (default)
    Every registration builds a fresh route set (an ``APIRouter`` holding the experiment's
    ``bp`` under ``/experiments/<slug>``) and swaps it into ``registry[slug]`` in one
    assignment. The app holds ONE :class:`ExperimentDispatcher` route, whatever the number
    of experiments and reloads; it looks the slug up in the registry per request and hands
    the request to the current route set. Reloading N times leaves one route set per slug,
    new code and new auth rules apply to the next request, and a disabled slug answers 404
    at once (it is no longer in the registry).
``"append"`` (baseline, the reference's behaviour)
    Every registration calls ``app.include_router(bp, prefix=...)`` again and never
    removes the old inclusion, so ``app.router.routes`` grows per reload, matching and 404s
    get linearly slower and the *oldest* handler keeps answering (stale code). Security is
    not part of the baseline: every inclusion carries the binding guard, which checks the
    live registry, so a disabled slug answers 404 here too, and the access dependency reads
    the current config on each request.

Static files (``/experiments/<slug>/static/...``) are served by the dispatcher in both
variants (the ``static_cache`` knob decides their headers).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, get_args

from fastapi import APIRouter, params
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, NoMatchFound, get_route_path
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from platform_core.experiments.static import serve_static

if TYPE_CHECKING:
    from platform_core.experiments.service import ExperimentService

RouteStrategy = Literal["replace", "append"]
ROUTE_STRATEGIES: tuple[str, ...] = get_args(RouteStrategy)
PREFIX = "/experiments/"


@dataclass(eq=False, slots=True)
class RegisteredExperiment:
    """One live registration; replaced as a whole on reload (never mutated in place)."""

    slug: str
    config: dict[str, Any]
    folder: Path
    read_scopes: tuple[str, ...]
    module: ModuleType
    bp: APIRouter
    router: APIRouter | None
    templates: Jinja2Templates
    generation: int
    code_fingerprint: str
    registered_at: float = field(default_factory=time.time)

    @property
    def static_root(self) -> Path:
        return self.folder / "static"

    @property
    def static_url(self) -> str:
        return f"/experiments/{self.slug}/static"

    @property
    def url(self) -> str:
        return f"/experiments/{self.slug}/"

    @property
    def public(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.config.get("name") or self.slug,
            "description": self.config.get("description") or "",
            "url": self.url,
        }


def build_route_set(
    slug: str,
    bp: APIRouter,
    dependencies: Sequence[params.Depends],
    *,
    public: APIRouter | None = None,
    public_dependencies: Sequence[params.Depends] = (),
) -> APIRouter:
    """A fresh router holding ``bp`` under ``/experiments/<slug>`` with ``dependencies``.

    ``public`` (the experiment's sub-auth login routes) is included first, with only
    ``public_dependencies``: it must be reachable without the access guard, and an
    experiment's catch-all route must not shadow it.
    """
    route_set = APIRouter()
    if public is not None:
        route_set.include_router(public, prefix=f"/experiments/{slug}",
                                 dependencies=list(public_dependencies))  # fmt: skip
    route_set.include_router(bp, prefix=f"/experiments/{slug}", dependencies=list(dependencies))
    return route_set


def count_routes(routes: Sequence[Any]) -> int:
    """Effective routes (included routers flattened), for the route-growth tests and study."""
    try:
        from fastapi.routing import _iter_routes_with_context  # newer FastAPI: lazy inclusion

        return sum(1 for _ in _iter_routes_with_context(list(routes)))
    except ImportError:  # pragma: no cover - older FastAPI copies routes on inclusion
        return len(routes)


def split_experiment_path(path: str) -> tuple[str, str] | None:
    """``/experiments/<slug>[/<tail>]`` → ``(slug, tail)``; anything else → ``None``."""
    if not path.startswith(PREFIX):
        return None
    slug, _, tail = path[len(PREFIX) :].partition("/")
    return (slug, tail) if slug else None


class ExperimentDispatcher(BaseRoute):
    """The single app route in front of every experiment (see module docstring)."""

    path = "/experiments/{slug}"
    name = "experiment_dispatcher"

    def __init__(self, service: ExperimentService) -> None:
        self.service = service
        self.include_in_schema = False

    def _target(self, scope: Scope) -> tuple[str, str] | None:
        if scope["type"] not in ("http", "websocket"):
            return None
        parts = split_experiment_path(get_route_path(scope))
        if parts is None or parts[0] not in self.service.registry:
            return None
        if parts[1].startswith("static/") and scope["type"] == "http":
            return parts
        if self.service.routes_strategy == "replace":
            return parts
        return None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        target = self._target(scope)
        if target is None:
            return Match.NONE, {}
        return Match.FULL, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        """``request.url_for("<route name>")`` works for routes of registered experiments."""
        for entry in list(self.service.registry.values()):
            if entry.router is None:
                continue
            try:
                return entry.router.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = split_experiment_path(get_route_path(scope))
        entry = self.service.registry.get(parts[0]) if parts else None
        if parts is None or entry is None:  # disabled between matching and handling
            raise HTTPException(404, "Not found")
        _slug, tail = parts
        if tail.startswith("static/") and scope["type"] == "http":
            request = Request(scope, receive)
            response = serve_static(
                request,
                entry.static_root,
                tail[len("static/") :],
                strategy=self.service.static_strategy,
                max_age=self.service.static_max_age,
            )
            await response(scope, receive, send)
            return
        assert entry.router is not None
        await entry.router(scope, receive, send)

    def __repr__(self) -> str:
        return f"ExperimentDispatcher(slugs={sorted(self.service.registry)})"


def binder(service: ExperimentService, slug: str) -> Callable[..., Any]:
    """Router-level guard: bind the request to ``slug`` from the live registry, or 404."""

    async def bind_experiment(request: Request) -> None:
        entry = service.registry.get(slug)
        if entry is None:
            raise HTTPException(404, "Not found")
        request.state.slug_id = slug
        request.state.read_scopes = list(entry.read_scopes)

    return bind_experiment


def access_guard(slug: str) -> Callable[..., Any]:
    """Router-level dependency applying :func:`require_experiment_access` for ``slug``."""
    from platform_core.experiments.access import require_experiment_access

    async def experiment_access(request: Request) -> None:
        await require_experiment_access(request, slug)

    return experiment_access
