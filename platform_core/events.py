"""In-process publish/subscribe for the admin server-sent-event streams (PLATFORM_SPEC 2.19).

The reference had ONE ``asyncio.Queue`` per stream shared by every listener, so each event
reached only one of the connected admins (spec 9). Here every subscriber owns a bounded
queue and :meth:`EventHub.publish` puts the event in all of them:

* **Bounded:** ``queue_size`` events per subscriber; a slow subscriber loses its *oldest*
  events (``deque(maxlen=...)``), never blocks the publisher or the other subscribers. Its
  ``dropped`` counter says how many. At most ``max_subscribers`` per topic
  (:class:`HubFull` beyond), so memory is bounded as well.
* **Cheap fan-out:** the SSE frame is encoded once per event and shared by all queues.
* **Lifecycle:** :meth:`Subscription.close` (or leaving ``async with``) unsubscribes;
  :meth:`EventHub.close` (app shutdown) wakes every subscriber so its stream ends.

Topics used by the platform: ``indexes`` (after experiment reloads and managed-index
runs) and ``users`` (after user creation and role changes), each with event ``update``.
Publishing is synchronous and must happen on the event loop's thread (every publisher is
a request handler or a task on that loop). :func:`notify` is the one-line form for callers
that only have the app: it does nothing for apps without a hub.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

DEFAULT_QUEUE_SIZE = 64
DEFAULT_MAX_SUBSCRIBERS = 256
TOPICS = ("indexes", "users")


class HubClosed(RuntimeError):
    """The hub is shut down; no new subscriptions."""


class HubFull(RuntimeError):
    """The topic has ``max_subscribers`` subscribers already."""


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    topic: str
    name: str
    data: dict[str, Any]
    frame: bytes = field(repr=False)  # the encoded SSE frame, shared by every subscriber


def encode_frame(event_id: int, name: str, data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), default=str)
    lines = "".join(f"data: {line}\n" for line in text.splitlines() or [""])
    return f"id: {event_id}\nevent: {name}\n{lines}\n".encode()


class Subscription:
    """One subscriber's queue. ``await get()`` returns the next event, ``None`` once closed."""

    __slots__ = ("_hub", "_items", "_wakeup", "closed", "delivered", "dropped", "topic")

    def __init__(self, hub: EventHub, topic: str, queue_size: int) -> None:
        self._hub = hub
        self.topic = topic
        self._items: deque[Event] = deque(maxlen=queue_size)
        self._wakeup = asyncio.Event()
        self.closed = False
        self.delivered = 0
        self.dropped = 0

    def _put(self, event: Event) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1  # the deque drops the oldest event on append
        self._items.append(event)
        self._wakeup.set()

    def pending(self) -> int:
        return len(self._items)

    async def get(self) -> Event | None:
        """The next event (waits); ``None`` when the subscription or the hub is closed.

        Cancellation-safe: an event is only taken off the queue once nothing is awaited.
        """
        while not self._items and not self.closed:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.closed:
            return None
        self.delivered += 1
        return self._items.popleft()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._items.clear()
            self._hub._remove(self)
            self._wakeup.set()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    def __init__(
        self,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
    ) -> None:
        if queue_size < 1 or max_subscribers < 1:
            raise ValueError("queue_size and max_subscribers must be at least 1")
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self._subscribers: dict[str, set[Subscription]] = {}
        self._ids = itertools.count(1)
        self.closed = False
        self.published = 0

    def subscribe(self, topic: str) -> Subscription:
        if self.closed:
            raise HubClosed("event hub is closed")
        subs = self._subscribers.setdefault(topic, set())
        if len(subs) >= self.max_subscribers:
            raise HubFull(f"too many subscribers to {topic!r} ({self.max_subscribers})")
        sub = Subscription(self, topic, self.queue_size)
        subs.add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.topic]

    def publish(self, topic: str, name: str = "update", data: dict[str, Any] | None = None) -> int:
        """Queue an event for every current subscriber of ``topic``; returns how many."""
        if self.closed:
            return 0
        subs = self._subscribers.get(topic)
        if not subs:
            return 0
        event_id = next(self._ids)
        payload = {"topic": topic, "at": time.time(), **(data or {})}
        event = Event(event_id, topic, name, payload, encode_frame(event_id, name, payload))
        for sub in subs:
            sub._put(event)
        self.published += 1
        return len(subs)

    def subscriber_count(self, topic: str | None = None) -> int:
        if topic is not None:
            return len(self._subscribers.get(topic, ()))
        return sum(len(s) for s in self._subscribers.values())

    def close(self) -> None:
        """End every subscription (app shutdown). Idempotent; never raises."""
        self.closed = True
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub.close()
        self._subscribers.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "closed": self.closed,
            "published": self.published,
            "subscribers": {t: len(s) for t, s in self._subscribers.items()},
            "dropped": sum(sub.dropped for s in self._subscribers.values() for sub in s),
        }


def notify(app: Any, topic: str, **data: Any) -> int:
    """Publish ``update`` on ``topic`` through ``app.state.events`` (no-op without a hub)."""
    hub = getattr(getattr(app, "state", None), "events", None)
    if not isinstance(hub, EventHub):
        return 0
    return hub.publish(topic, "update", data)
