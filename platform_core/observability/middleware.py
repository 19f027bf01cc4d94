"""Pure ASGI middleware for every request: request id, DB command count, metrics, 500s.

Pure ASGI on purpose: ``BaseHTTPMiddleware`` (``@app.middleware("http")``) costs
~0.2-0.3 ms of CPU per request (STACK_NOTES) and runs the endpoint in another task,
which would also break the context-variable based command counting.

* ``X-Request-ID``: a sane incoming id (1-64 chars of ``[A-Za-z0-9-]``) is kept so a
  proxy or load generator can correlate; anything else is replaced by a fresh one. The id
  is in a context variable, on ``request.state.request_id`` and, through
  :class:`RequestIdFilter`, in every log line.
* ``X-DB-Commands``: the DB commands the request issued before its response started
  (``count_commands()``; driver handshakes excluded). The metrics histogram gets the
  final count, including commands issued while streaming a body.
* An unhandled exception is logged with the request id and answered with a bare 500
  (JSON or HTML by path) that carries no exception text.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core.observability.commands import count_commands
from platform_core.observability.metrics import PlatformMetrics, route_label

log = logging.getLogger("platform_core.request")

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9-]{1,64}")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


def current_request_id() -> str:
    return request_id_var.get()


def accept_request_id(value: str | None) -> str:
    if value and _REQUEST_ID_RE.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) so formats can use it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


LOG_FORMAT = "%(asctime)s | [%(request_id)s] | %(name)s | %(levelname)s | %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Root handler with the request-id format (idempotent). For servers, not libraries."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in root.handlers:
        if getattr(handler, "_platform_core", False):
            return
    handler = logging.StreamHandler()
    handler._platform_core = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: PlatformMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = accept_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        response: dict[str, Any] = {"status": 500, "started": False}
        try:
            with count_commands() as counted:

                async def send_wrapper(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        response["started"] = True
                        response["status"] = message["status"]
                        headers = MutableHeaders(scope=message)
                        headers["X-Request-ID"] = request_id
                        headers["X-DB-Commands"] = str(counted.total)
                    await send(message)

                try:
                    await self.app(scope, receive, send_wrapper)
                except Exception:
                    log.exception(
                        "unhandled error in %s %s (request %s)",
                        scope.get("method"), scope.get("path"), request_id,
                    )  # fmt: skip
                    if response["started"]:
                        raise  # headers are out: all we can do is drop the connection
                    await self._internal_error(scope, receive, send_wrapper)
        finally:
            if self.metrics is not None:
                self.metrics.observe(
                    scope.get("method", "GET"),
                    route_label(scope),
                    int(response["status"]),
                    time.perf_counter() - started,
                    counted.total,
                )
            request_id_var.reset(token)

    @staticmethod
    async def _internal_error(scope: Scope, receive: Receive, send: Send) -> None:
        from platform_core.errors import error_response

        resp = error_response(Request(scope), 500, "Internal server error")
        await resp(scope, receive, send)
