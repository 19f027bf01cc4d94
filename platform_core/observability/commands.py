"""Exact DB command counting, per block of code, correct under concurrency.

A single :class:`CommandCounter` listener is registered on every client the platform
builds. It records a command only into the counters that are *active in the current
context* (a :class:`contextvars.ContextVar`), so two concurrent tasks each inside their
own ``with count_commands()`` never see each other's commands, while tasks spawned from
inside a block inherit it (asyncio copies the context into new tasks). Works for both
drivers: pymongo's async client publishes events in the calling task, and motor copies
the caller's context into its executor thread.

    with count_commands() as counted:
        await db.users.find_one({"email": e})
    assert counted.total == 1 and counted.by_name["find"] == 1
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from pymongo import monitoring

# Commands a driver issues for itself on new connections or sessions; they are real
# round trips, so they are counted, but kept apart so "commands the code asked for" is exact.
DRIVER_INTERNAL = frozenset(
    {"hello", "ismaster", "isMaster", "saslStart", "saslContinue", "endSessions"}
)


@dataclass(slots=True)
class CommandCount:
    """Commands seen inside one ``count_commands()`` block."""

    by_name: Counter[str] = field(default_factory=Counter)
    by_collection: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: int = 0
    duration_micros: int = 0
    internal: int = 0

    @property
    def total(self) -> int:
        """Commands issued by the code under test (driver-internal handshakes excluded)."""
        return sum(n for name, n in self.by_name.items() if name not in DRIVER_INTERNAL)

    def on(self, collection: str, name: str | None = None) -> int:
        """Commands against one collection (optionally of one command name)."""
        return sum(
            n for (cmd, coll), n in self.by_collection.items()
            if coll == collection and (name is None or cmd == name)
        )  # fmt: skip

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "by_name": dict(self.by_name),
            "failed": self.failed,
            "duration_ms": self.duration_micros / 1000,
        }


_active: ContextVar[tuple[CommandCount, ...]] = ContextVar("db_command_counts", default=())


@contextlib.contextmanager
def count_commands() -> Iterator[CommandCount]:
    """Count the DB commands issued in this context (and tasks started from it)."""
    counted = CommandCount()
    token = _active.set((*_active.get(), counted))
    try:
        yield counted
    finally:
        _active.reset(token)


def collection_of(command_name: str, command: dict[str, object]) -> str:
    """The collection a command targets ('' for database- or server-level commands)."""
    if command_name == "getMore":
        value = command.get("collection")
    else:
        value = command.get(command_name)
    return value if isinstance(value, str) else ""


class CommandCounter(monitoring.CommandListener):
    """The listener behind :func:`count_commands`; stateless, so one instance serves all."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        counts = _active.get()
        if not counts:
            return
        name = event.command_name
        coll = collection_of(name, event.command)
        for counted in counts:
            counted.by_name[name] += 1
            counted.by_collection[(name, coll)] += 1
            if name in DRIVER_INTERNAL:
                counted.internal += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        for counted in _active.get():
            counted.duration_micros += event.duration_micros

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        for counted in _active.get():
            counted.failed += 1
            counted.duration_micros += event.duration_micros


command_counter = CommandCounter()
