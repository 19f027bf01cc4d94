"""The one place that knows which MongoDB driver is in use.

The rest of the code base asks this module for a client and never imports
``pymongo.AsyncMongoClient`` or ``motor`` itself. Both drivers expose the same
collection API except for a few calls that are coroutines in one and plain
methods in the other; :func:`maybe_await` papers over that.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo.errors import PyMongoError, ServerSelectionTimeoutError

from platform_core.settings import DriverName, Settings

AsyncClient = Any  # pymongo.AsyncMongoClient | motor AsyncIOMotorClient (same duck type)
AsyncDatabase = Any
AsyncCollection = Any


class DatabaseUnavailable(RuntimeError):
    """The configured MongoDB server could not be reached (message names the host only)."""


def hosts_of(uri: str) -> str:
    """Return the ``host:port`` list of a MongoDB URI without credentials or options.

    Parsed by hand on purpose: ``pymongo.uri_parser`` resolves ``mongodb+srv`` names
    through DNS, and an error message must never depend on (or leak) more than the hosts.
    """
    rest = uri.split("://", 1)[-1]
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
    return netloc or "localhost"


def create_client(
    uri: str,
    *,
    driver: DriverName = "pymongo",
    event_listeners: Sequence[object] = (),
    count_commands: bool = True,
    **options: Any,
) -> AsyncClient:
    """Build an async client for ``uri`` with the chosen driver.

    ``options`` are pymongo keyword options (``maxPoolSize``, ``appname``...); both drivers
    accept the same ones. The client connects lazily. The command counter behind
    :func:`platform_core.observability.count_commands` is attached unless
    ``count_commands=False`` (it costs nothing outside a counting block but a context-var read).
    """
    from platform_core.observability.commands import command_counter

    listeners = list(event_listeners)
    if count_commands and command_counter not in listeners:
        listeners.append(command_counter)
    kwargs: dict[str, Any] = {"event_listeners": listeners, "tz_aware": True, **options}
    if driver == "pymongo":
        from pymongo import AsyncMongoClient

        return AsyncMongoClient(uri, **kwargs)
    if driver == "motor":
        from motor.motor_asyncio import AsyncIOMotorClient

        return AsyncIOMotorClient(uri, **kwargs)
    raise ValueError(f"unknown MongoDB driver {driver!r}: choose 'pymongo' or 'motor'")


def client_from_settings(
    settings: Settings, *, uri: str | None = None, event_listeners: Iterable[object] = ()
) -> AsyncClient:
    """A client configured from :class:`Settings` (pool sizes, timeouts, driver)."""
    target = uri or settings.mongodb_uri
    if not target:
        raise DatabaseUnavailable(
            "no MongoDB URI configured: set MONGODB_URI or start one with `workbench db`"
        )
    return create_client(
        target,
        driver=settings.driver,
        event_listeners=list(event_listeners),
        **settings.pool_options(),
    )


def driver_of(client: AsyncClient) -> DriverName:
    return "motor" if type(client).__module__.startswith("motor") else "pymongo"


async def maybe_await(value: Any) -> Any:
    """Await ``value`` if the driver handed back an awaitable, else return it as is."""
    if inspect.isawaitable(value):
        return await value
    return value


async def close_client(client: AsyncClient) -> None:
    """Close a client of either driver (pymongo's ``close`` is a coroutine, motor's is not)."""
    await maybe_await(client.close())


async def ping(client: AsyncClient, uri: str | None = None) -> None:
    """Ping the server; raise :class:`DatabaseUnavailable` naming only the host on failure."""
    try:
        await client.admin.command("ping")
    except ServerSelectionTimeoutError as exc:
        where = hosts_of(uri) if uri else _client_hosts(client)
        raise DatabaseUnavailable(
            f"MongoDB at {where} is unreachable (server selection timed out)"
        ) from exc
    except PyMongoError as exc:
        where = hosts_of(uri) if uri else _client_hosts(client)
        raise DatabaseUnavailable(
            f"MongoDB at {where} failed to answer ping: {type(exc).__name__}"
        ) from exc


def _client_hosts(client: AsyncClient) -> str:
    try:
        nodes = client.topology_description.server_descriptions().keys()
        return ",".join(f"{h}:{p}" for h, p in nodes) or "unknown host"
    except Exception:  # a description is best effort only
        return "unknown host"


def ping_sync(uri: str, timeout_ms: int = 500) -> bool:
    """One synchronous ping with a short timeout; True if the server answered.

    Used by the embedded-DB process manager, which must work without an event loop.
    """
    from pymongo import MongoClient

    client: MongoClient[Any] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def build_info_sync(uri: str, timeout_ms: int = 2_000) -> dict[str, Any]:
    from pymongo import MongoClient

    client: MongoClient[Any] = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)
    try:
        return dict(client.admin.command("buildInfo"))
    finally:
        client.close()
