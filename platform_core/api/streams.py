"""Admin server-sent-event streams: ``/admin/api/indexes/stream`` and ``/admin/api/users/stream``.

Each connection subscribes to its own queue of :class:`~platform_core.events.EventHub`
(the reference's shared queue delivered every event to one listener only). Frames:

* ``retry: 3000`` and a ``: connected`` comment first (the subscription exists by then);
* ``id: <n>`` / ``event: update`` / ``data: {"topic": ..., "at": ..., ...}`` per event;
* ``: heartbeat`` every ``SSE_HEARTBEAT_SECONDS`` (30 s) of silence, so proxies keep the
  connection open and dead clients are noticed.

The stream ends, and the subscription is removed, when the client disconnects, when the
hub closes (app shutdown) or after :data:`MAX_STREAM_SECONDS` (``EventSource`` reconnects by
itself; this bounds how long a graceful server shutdown can wait on an open stream).
Admins only: anonymous → 401, others → 403 (JSON, before anything is streamed).
"""

from __future__ import annotations

import contextlib
import time

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from platform_core.deps import AdminUser
from platform_core.errors import error_response
from platform_core.events import EventHub, HubClosed, HubFull, Subscription

router = APIRouter(tags=["admin-streams"])

MAX_STREAM_SECONDS = 15 * 60.0
RECONNECT_MS = 3000
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


class EventStreamResponse(Response):
    """Streams one subscription until disconnect, hub close or ``max_seconds``.

    Unlike ``StreamingResponse`` it always watches ``receive`` for ``http.disconnect``
    (Starlette stops doing so for ASGI spec 2.4 servers), so a gone client releases its
    subscription at once, not at the next heartbeat.
    """

    media_type = "text/event-stream"
    charset = "utf-8"

    def __init__(self, subscription: Subscription, *, heartbeat: float, max_seconds: float) -> None:
        super().__init__(content=None, headers=_HEADERS)
        # A streamed body has no length.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.subscription = subscription
        self.heartbeat = heartbeat
        self.max_seconds = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.subscription
        try:
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while True:
                        message: Message = await receive()
                        if message["type"] == "http.disconnect":
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_disconnect)
                await self._stream(send)
                tg.cancel_scope.cancel()
        finally:
            sub.close()

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        await _body(send, f"retry: {RECONNECT_MS}\n: connected\n\n".encode())
        deadline = time.monotonic() + self.max_seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = None
            with anyio.move_on_after(min(self.heartbeat, remaining)) as waiting:
                event = await self.subscription.get()
            if waiting.cancelled_caught:
                if deadline - time.monotonic() > 0:
                    await _body(send, b": heartbeat\n\n")
                continue
            if event is None:  # unsubscribed: the hub closed
                break
            await _body(send, event.frame)
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _body(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


def _stream(request: Request, topic: str) -> Response:
    hub: EventHub | None = getattr(request.app.state, "events", None)
    if hub is None:
        return error_response(request, 503, "Event streams are not available")
    try:
        sub = hub.subscribe(topic)
    except HubClosed:
        return error_response(request, 503, "Server shutting down", {"Retry-After": "5"})
    except HubFull:
        return error_response(request, 503, "Too many open streams", {"Retry-After": "30"})
    settings = request.app.state.settings
    heartbeat = float(getattr(settings, "sse_heartbeat_seconds", 30.0))
    return EventStreamResponse(sub, heartbeat=heartbeat, max_seconds=MAX_STREAM_SECONDS)


@router.get("/admin/api/indexes/stream")
async def indexes_stream(request: Request, admin: AdminUser) -> Response:
    """``update`` after experiment reloads and managed-index runs."""
    return _stream(request, "indexes")


@router.get("/admin/api/users/stream")
async def users_stream(request: Request, admin: AdminUser) -> Response:
    """``update`` after user creation and role changes."""
    return _stream(request, "users")
