"""The scoped database of an actor that runs in its own process (Ray).

In-process actors never need this: the platform passes them ``db`` (built on a client from
``app.state.actor_clients``). An actor in another process builds its own handles here,
through one :class:`~platform_core.db.actor_clients.ActorClients` per process configured
from that process's environment (``Settings()``), so knob ``actor_client`` applies there
too: ``shared`` (default) reuses one client per URI and pool size for every actor of the
process (the reference's singleton never reused its client because of the ``_topology``
check, spec 2.3), ``per_call`` builds a new client per actor database (the baseline).
"""

from __future__ import annotations

import threading
from typing import Any

from platform_core.db.actor_clients import ActorClients
from platform_core.db.scoped import ScopedDatabase
from platform_core.settings import Settings

_lock = threading.Lock()
_clients: ActorClients | None = None


def process_clients() -> ActorClients:
    """The actor clients of this process (created on first use from the environment)."""
    global _clients
    with _lock:
        if _clients is None:
            settings = Settings()
            _clients = ActorClients(settings, strategy=settings.knob("actor_client"))  # type: ignore[arg-type]
        return _clients


def shared_client(mongo_uri: str) -> Any:
    return process_clients().client(mongo_uri)


def actor_database(
    mongo_uri: str | None, db_name: str | None, write_scope: str, read_scopes: list[str]
) -> ScopedDatabase:
    if not mongo_uri or not db_name:
        raise RuntimeError("an out-of-process actor needs mongo_uri and db_name")
    database = process_clients().database(db_name, uri=mongo_uri)
    return ScopedDatabase(database, read_scopes, write_scope)
