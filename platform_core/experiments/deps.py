"""FastAPI dependencies that experiment routers use (``Depends(get_experiment_db)``...).

The platform binds every experiment request to its slug before any handler runs (a
router-level dependency added at registration sets ``request.state.slug_id`` and
``read_scopes`` from the live registry), so these dependencies never trust a path
parameter or a header for the slug.

``get_experiment_db`` gives a :class:`~platform_core.db.scoped.ScopedDatabase` with
``write_scope = slug`` and ``read_scopes = `` the resolved ``data_scope``: an experiment
writes only its own collections and reads another experiment's only if it listed it (and
its owner was allowed to, see ``scopes.py``).

``get_experiment_facade`` gives the same scoped database behind the ``ExperimentDB``
convenience facade (:mod:`platform_core.db.facade`; knob ``slots`` picks plain or
``__slots__`` classes). Both are built with the data-layer knobs in force (see
``ExperimentService.scoped_db``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from platform_core.db.scoped import ScopedDatabase

if TYPE_CHECKING:
    from platform_core.experiments.registry import RegisteredExperiment
    from platform_core.experiments.service import ExperimentService


def _service(request: Request) -> ExperimentService:
    service = getattr(request.app.state, "experiment_service", None)
    if service is None:
        raise HTTPException(503, "Experiments are not available")
    return service


def get_registered_experiment(request: Request) -> RegisteredExperiment:
    """The live registration of the request's experiment (404 once it is disabled)."""
    slug = getattr(request.state, "slug_id", None)
    if not slug:
        raise HTTPException(500, "Experiment context missing: route not mounted by the platform")
    entry = _service(request).registry.get(slug)
    if entry is None:
        raise HTTPException(404, "Not found")
    return entry


async def get_experiment_db(request: Request) -> ScopedDatabase:
    """The scoped database of the request's experiment."""
    entry = get_registered_experiment(request)
    return _service(request).scoped_db(entry)


async def get_experiment_facade(request: Request) -> Any:
    """The ``ExperimentDB`` facade over the request's scoped database (knob ``slots``)."""
    entry = get_registered_experiment(request)
    return _service(request).facade(entry)


def get_experiment_templates(request: Request) -> Jinja2Templates:
    return get_registered_experiment(request).templates


async def get_experiment_config(request: Request) -> dict[str, Any]:
    """The experiment's config (through the config cache; a private copy)."""
    entry = get_registered_experiment(request)
    config = await _service(request).config_cache.get(entry.slug, request=request)
    if config is None:
        raise HTTPException(404, "Not found")
    return config


def get_experiment_actor(request: Request) -> Any:
    """The cached actor handle of the experiment (``await actor.call("method", ...)``)."""
    entry = get_registered_experiment(request)
    handle = _service(request).actors.get(entry.slug)
    if handle is None:
        raise HTTPException(503, f"Experiment {entry.slug!r} has no running actor")
    return handle


async def render_experiment(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Response:
    """Render an experiment template with the platform's navigation context."""
    from platform_core.web import nav_context

    entry = get_registered_experiment(request)
    ctx = await nav_context(request)
    ctx.update({"slug": entry.slug, "static_url": entry.static_url, "experiment": entry.public})
    ctx.update(context or {})
    return entry.templates.TemplateResponse(request, name, ctx, status_code=status_code)


ExperimentDB = Annotated[ScopedDatabase, Depends(get_experiment_db)]
ExperimentFacade = Annotated[Any, Depends(get_experiment_facade)]
ExperimentTemplates = Annotated[Jinja2Templates, Depends(get_experiment_templates)]
ExperimentConfig = Annotated[dict[str, Any], Depends(get_experiment_config)]
ExperimentActorHandle = Annotated[Any, Depends(get_experiment_actor)]
