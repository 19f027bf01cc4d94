"""Profile one request on demand: ``?profile=1`` returns pyinstrument's HTML report.

Only when ``settings.profiling_enabled`` is true (read per request, so it can be switched
on a live app); otherwise the parameter is ignored and the request runs normally. Pure
ASGI: a profiled request's own response is discarded and replaced by the profile, and an
unprofiled request pays one dict lookup. ``async_mode="enabled"`` attributes time spent
awaiting the database to the awaiting code; ``interval=0.0001`` gives a ~3 ms request
enough samples (STACK_NOTES).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from pyinstrument import Profiler
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROFILE_INTERVAL = 0.0001


def _wants_profile(scope: Scope) -> bool:
    query = scope.get("query_string", b"")
    if b"profile" not in query:
        return False
    for key, value in parse_qsl(query.decode("latin-1")):
        if key == "profile" and value in ("1", "true", "yes"):
            return True
    return False


class ProfilingMiddleware:
    def __init__(self, app: ASGIApp, enabled: Callable[[], bool]) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _wants_profile(scope) or not self.enabled():
            await self.app(scope, receive, send)
            return
        status = {"code": 0}

        async def swallow(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]

        profiler = Profiler(async_mode="enabled", interval=PROFILE_INTERVAL)
        profiler.start()
        try:
            await self.app(scope, receive, swallow)
        finally:
            profiler.stop()
        html = profiler.output_html()
        response = HTMLResponse(
            html, headers={"X-Profiled-Status": str(status["code"]), "Cache-Control": "no-store"}
        )
        await response(scope, receive, send)
