"""The scoped database of an actor that runs in its own process (Ray).

One client per process, created on first use and reused by every actor of that process
(the reference's singleton never reused its client because of the ``_topology`` check,
spec 2.3). In-process actors never need this: the platform passes them ``db``.
"""

from __future__ import annotations

import threading
from typing import Any

from platform_core.db.client import create_client
from platform_core.db.scoped import ScopedDatabase

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def shared_client(mongo_uri: str) -> Any:
    with _lock:
        client = _clients.get(mongo_uri)
        if client is None:
            client = create_client(mongo_uri, maxPoolSize=10, minPoolSize=0,
                                   appname="platform-actor")  # fmt: skip
            _clients[mongo_uri] = client
        return client


def actor_database(
    mongo_uri: str | None, db_name: str | None, write_scope: str, read_scopes: list[str]
) -> ScopedDatabase:
    if not mongo_uri or not db_name:
        raise RuntimeError("an out-of-process actor needs mongo_uri and db_name")
    return ScopedDatabase(shared_client(mongo_uri)[db_name], read_scopes, write_scope)
