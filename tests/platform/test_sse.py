"""Admin SSE streams: one queue per client (the reference shared one), heartbeats, and a
clean end on disconnect and shutdown.

``httpx.ASGITransport`` buffers whole responses, so an endless stream would hang it. These
tests drive the ASGI app directly (:class:`StreamCall`): read messages with a timeout,
then send ``http.disconnect`` and wait (bounded) for the app call to return.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from platform_core.api import streams
from platform_core.events import (
    EventHub,
    HubClosed,
    HubFull,
    Subscription,
    encode_frame,
    notify,
)
from tests.platform.conftest import user_client

TIMEOUT = 5.0
USERS = "/admin/api/users/stream"
INDEXES = "/admin/api/indexes/stream"


class StreamCall:
    """One streaming GET against the full middleware stack, without httpx."""

    def __init__(self, app: FastAPI, path: str, token: str, **headers: str) -> None:
        raw = [(b"host", b"testserver"), (b"accept", b"text/event-stream"),
               (b"cookie", f"token={token}".encode())]  # fmt: skip
        raw += [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": raw,
            "client": ("127.0.0.1", 4711), "server": ("testserver", 80),
        }  # fmt: skip
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()
        self._requested = False
        self.text = ""
        self.task = asyncio.create_task(app(scope, self._receive, self.messages.put))

    async def _receive(self) -> dict[str, Any]:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        await asyncio.sleep(0.01)  # an app that ignores disconnects must not spin this loop
        return {"type": "http.disconnect"}

    async def start(self) -> dict[str, str]:
        """Wait for the response start and the ``: connected`` comment; returns headers."""
        message = await asyncio.wait_for(self.messages.get(), TIMEOUT)
        assert message["type"] == "http.response.start", message
        assert message["status"] == 200, message
        await self.read_until(": connected")
        return {k.decode(): v.decode() for k, v in message["headers"]}

    async def read_until(self, marker: str) -> str:
        """Body text received so far once it contains ``marker`` (fails after TIMEOUT)."""
        async with asyncio.timeout(TIMEOUT):
            while marker not in self.text:
                message = await self.messages.get()
                assert message["type"] == "http.response.body"
                self.text += message.get("body", b"").decode()
                if not message.get("more_body", False):
                    break
        assert marker in self.text, self.text
        return self.text

    async def finished(self) -> None:
        """The app call returned (bounded wait)."""
        await asyncio.wait_for(self.task, TIMEOUT)

    async def disconnect(self) -> None:
        self.gone.set()
        await self.finished()


def events_in(text: str) -> list[dict[str, str]]:
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append(fields)
    return found


@pytest.fixture
def token(admin_http: httpx.AsyncClient) -> str:
    return admin_http.cookies["token"]


# --- the hub ----------------------------------------------------------------------------------


async def take(sub: Subscription) -> dict[str, Any]:
    event = await asyncio.wait_for(sub.get(), TIMEOUT)
    assert event is not None
    return event.data


@pytest.mark.asyncio
async def test_hub_fans_out_to_every_subscriber_and_drops_oldest() -> None:
    hub = EventHub(queue_size=2, max_subscribers=3)
    fast, slow = hub.subscribe("users"), hub.subscribe("users")
    other = hub.subscribe("indexes")
    assert hub.publish("users", "update", {"n": 1}) == 2
    assert (await take(fast))["n"] == 1
    hub.publish("users", "update", {"n": 2})
    hub.publish("users", "update", {"n": 3})
    assert [(await take(fast))["n"] for _ in range(2)] == [2, 3]
    # ``slow`` never read: its queue kept the newest two, the oldest was dropped.
    assert slow.dropped == 1 and slow.pending() == 2
    assert [(await take(slow))["n"] for _ in range(2)] == [2, 3]
    assert other.pending() == 0 and hub.subscriber_count() == 3
    with pytest.raises(HubFull):
        for _ in range(2):
            hub.subscribe("users")
    fast.close()
    assert hub.subscriber_count("users") == 2
    waiting = asyncio.create_task(other.get())
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(waiting, TIMEOUT) is None  # a waiting reader is woken
    assert hub.subscriber_count() == 0 and hub.publish("users") == 0
    with pytest.raises(HubClosed):
        hub.subscribe("users")


def test_frames_and_notify_without_hub() -> None:
    frame = encode_frame(7, "update", {"text": "a\nb"})
    assert frame == b'id: 7\nevent: update\ndata: {"text":"a\\nb"}\n\n'
    assert notify(object(), "users", reason="x") == 0


# --- the endpoints ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_two_subscribers_receive_the_same_event(
    app: FastAPI, admin_http: httpx.AsyncClient, token: str
) -> None:
    hub: EventHub = app.state.events
    await admin_http.post("/admin/api/users/create",
                          json={"email": "dev@example.com", "password": "dev-pass-123"})  # fmt: skip
    first = StreamCall(app, USERS, token)
    second = StreamCall(app, USERS, token, accept_encoding="gzip")
    headers = await first.start()
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-store" and "content-length" not in headers
    assert "content-encoding" not in await second.start()  # streams are never gzipped
    assert hub.subscriber_count("users") == 2

    r = await admin_http.post("/admin/api/users/dev@example.com/roles/developer")
    assert r.status_code == 200 and r.json()["changed"] is True
    for call in (first, second):
        await call.read_until("role_added")
    one, two = events_in(first.text), events_in(second.text)
    assert one == two and len(one) == 1
    assert one[0]["event"] == "update" and '"email":"dev@example.com"' in one[0]["data"]

    await first.disconnect()
    assert hub.subscriber_count("users") == 1
    # An unchanged role publishes nothing; a removal does, to the remaining subscriber.
    await admin_http.post("/admin/api/users/dev@example.com/roles/developer")
    await admin_http.delete("/admin/api/users/dev@example.com/roles/developer")
    await second.read_until("role_removed")
    assert [e["data"].count("role_") for e in events_in(second.text)] == [1, 1]
    await second.disconnect()
    assert hub.subscriber_count() == 0


@pytest.mark.asyncio
async def test_indexes_stream_after_reload(
    app: FastAPI, admin_http: httpx.AsyncClient, token: str
) -> None:
    call = StreamCall(app, INDEXES, token)
    await call.start()
    assert (await admin_http.post("/admin/api/reload-all")).status_code == 200
    text = await call.read_until("reload_all")
    assert events_in(text)[0]["event"] == "update"
    await call.disconnect()
    assert app.state.events.subscriber_count() == 0


@pytest.mark.asyncio
async def test_heartbeat_and_shutdown(
    app: FastAPI, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.settings, "sse_heartbeat_seconds", 0.05)
    call = StreamCall(app, USERS, token)
    await call.start()
    await call.read_until(": heartbeat")
    app.state.events.close()  # what the lifespan does first at shutdown
    await call.finished()
    last = None
    while not call.messages.empty():
        last = call.messages.get_nowait()
    assert last == {"type": "http.response.body", "body": b"", "more_body": False}
    assert app.state.events.subscriber_count() == 0
    # New streams are refused while shutting down.
    refused = StreamCall(app, USERS, token)
    await refused.finished()
    assert refused.messages.get_nowait()["status"] == 503


@pytest.mark.asyncio
async def test_stream_lifetime_is_bounded(
    app: FastAPI, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "MAX_STREAM_SECONDS", 0.2)
    call = StreamCall(app, INDEXES, token)
    await call.start()
    await call.finished()  # ended by itself; EventSource reconnects after ``retry``
    assert app.state.events.subscriber_count() == 0


@pytest.mark.asyncio
async def test_streams_are_admin_only(app: FastAPI, http: httpx.AsyncClient) -> None:
    for path in (USERS, INDEXES):
        r = await http.get(path)
        assert r.status_code == 401 and r.json()["status"] == "error"
    async with user_client(app, "dev2@example.com", roles=["developer"]) as dev:
        for path in (USERS, INDEXES):
            assert (await dev.get(path)).status_code == 403
    assert app.state.events.subscriber_count() == 0


def test_server_shutdown_does_not_wait_forever_on_streams(
    platform_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from platform_core.observability import middleware
    from platform_core.server import GRACEFUL_SHUTDOWN_SECONDS, run_server

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(middleware, "configure_logging", lambda level: None)  # no global handler
    run_server(platform_settings)
    assert seen["timeout_graceful_shutdown"] == GRACEFUL_SHUTDOWN_SECONDS
    assert seen["proxy_headers"] is False  # the app applies TRUSTED_PROXIES itself
