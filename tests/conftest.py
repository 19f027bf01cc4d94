"""Shared fixtures: every test talks to a real MongoDB wire-protocol server.

One server per test session: the embedded SecantusDB process (started here, stopped at the
end, also on failure) or the server named by ``MONGODB_URI``. Each test gets its own
database name, dropped afterwards, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from bench.embedded_db import MongoServer, database
from platform_core.db.client import close_client, create_client


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    with database() as server:
        yield server


@pytest.fixture(scope="session")
def mongodb_uri(mongo_server: MongoServer) -> str:
    return mongo_server.uri


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["pymongo", "motor"])
def driver(request: pytest.FixtureRequest) -> str:
    """Parametrise a test over both drivers."""
    return request.param


@pytest_asyncio.fixture
async def client(mongodb_uri: str, db_name: str) -> AsyncIterator[object]:
    """A pymongo AsyncMongoClient on the function's loop; its test database is dropped after."""
    c = create_client(mongodb_uri, driver="pymongo", serverSelectionTimeoutMS=5_000)
    try:
        yield c
    finally:
        await c.drop_database(db_name)
        await close_client(c)


@pytest_asyncio.fixture
async def any_client(mongodb_uri: str, db_name: str, driver: str) -> AsyncIterator[object]:
    """Like ``client`` but once per driver (pymongo async and motor)."""
    c = create_client(mongodb_uri, driver=driver, serverSelectionTimeoutMS=5_000)
    try:
        yield c
    finally:
        await c.drop_database(db_name)
        await close_client(c)


@pytest.fixture
def db(client: object, db_name: str) -> object:
    return client[db_name]  # type: ignore[index]


@pytest.fixture
def any_db(any_client: object, db_name: str) -> object:
    return any_client[db_name]  # type: ignore[index]
