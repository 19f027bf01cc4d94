"""The error contract: JSON on API paths, an HTML page elsewhere, nothing leaked.

* API paths (``/api/...``, ``/admin/api/...`` and any ``.../api/...`` below an experiment)
  answer ``{"detail": ..., "status": "error"}``; other paths render ``error.html``.
* Headers of an ``HTTPException`` are kept: the reference dropped them, so its 307 "go to
  login" had no ``Location`` (PLATFORM_SPEC 8.3). Redirects are passed through as redirects.
* Validation errors answer 422 with a readable message; the offending input is never
  echoed back (it may be a password).
* A database that cannot be reached is a 503, not a 500, and the request fails as fast as
  the driver's server-selection timeout allows.
* Unhandled exceptions become a 500 in :mod:`platform_core.observability.middleware`,
  which logs them with the request id; the body never carries exception text.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from platform_core.db.client import DatabaseUnavailable

log = logging.getLogger(__name__)

_STATUS_TEXT = {
    400: "Bad request",
    401: "Login required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def is_api_path(path: str) -> bool:
    """True for paths whose clients expect JSON errors."""
    return path == "/api" or path.startswith("/api/") or "/api/" in path or path.endswith("/api")


def wants_json(request: Request) -> bool:
    return is_api_path(request.url.path)


def error_response(
    request: Request, status_code: int, detail: Any, headers: dict[str, str] | None = None
) -> Response:
    """The platform's error answer for ``request`` (JSON or HTML by path)."""
    if is_api_path(request.url.path):
        return JSONResponse(
            {"detail": detail, "status": "error"}, status_code=status_code, headers=headers
        )
    return render_error_page(request, status_code, detail, headers)


def render_error_page(
    request: Request, status_code: int, detail: Any, headers: dict[str, str] | None = None
) -> Response:
    message = detail if isinstance(detail, str) else _STATUS_TEXT.get(status_code, "Error")
    templates = getattr(request.app.state, "templates", None)
    context = {
        "status_code": status_code,
        "title": _STATUS_TEXT.get(status_code, "Error"),
        "message": message,
        "request_id": getattr(request.state, "request_id", None),
    }
    if templates is not None:
        try:
            return templates.TemplateResponse(
                request, "error.html", context, status_code=status_code, headers=headers
            )
        except Exception:  # a broken template must not hide the original error
            log.exception("rendering error.html failed")
    body = f"<!doctype html><title>{status_code}</title><h1>{status_code}</h1>"
    return HTMLResponse(body, status_code=status_code, headers=headers)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if 300 <= exc.status_code < 400:
        # A redirect stays a redirect (with its Location), on every kind of path.
        return Response(status_code=exc.status_code, headers=headers)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    return error_response(request, exc.status_code, exc.detail, headers)


def _describe(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    clean: list[dict[str, Any]] = []
    parts: list[str] = []
    for err in errors[:20]:
        loc = [str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid value"))
        # "input"/"ctx" are deliberately dropped: they can hold passwords or huge bodies.
        clean.append({"loc": loc, "msg": msg, "type": str(err.get("type", ""))})
        where = ".".join(p for p in loc if p not in ("body", "query", "path", "header"))
        parts.append(f"{where or 'request'}: {msg}")
    return "Invalid request: " + "; ".join(parts), clean


async def validation_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, errors = _describe(list(exc.errors()))
    if is_api_path(request.url.path) or _sent_json(request):
        return JSONResponse(
            {"detail": message, "errors": errors, "status": "error"}, status_code=422
        )
    return render_error_page(request, 422, message)


def _sent_json(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/json")


async def database_unavailable_handler(request: Request, exc: Exception) -> Response:
    # Host names only; the driver's message can be long and is of no use to a client.
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path,
                type(exc).__name__)  # fmt: skip
    return error_response(
        request, 503, "Database unavailable, try again shortly", {"Retry-After": "5"}
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    # ConnectionFailure covers ServerSelectionTimeoutError, AutoReconnect, NetworkTimeout
    # and WaitQueueTimeoutError (Starlette matches handlers along the exception's MRO).
    app.add_exception_handler(ConnectionFailure, database_unavailable_handler)
    app.add_exception_handler(DatabaseUnavailable, database_unavailable_handler)
