"""The embedded SecantusDB process manager and the URI/backend plumbing around it."""

from __future__ import annotations

import os
import socket
import time

import pytest

from bench import embedded_db
from bench.embedded_db import EmbeddedDBError, EmbeddedMongo, ExternalMongo
from platform_core.db.backend import backend_from_build_info
from platform_core.db.client import DatabaseUnavailable, close_client, create_client, hosts_of, ping


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_start_ping_backend_and_stop() -> None:
    with EmbeddedMongo() as server:
        pid = server.pid
        assert pid is not None and _alive(pid)
        assert "retryWrites=false" in server.uri and "directConnection=true" in server.uri
        assert server.uri.startswith("mongodb://127.0.0.1:")
        assert server.backend.name == "SecantusDB"
    assert not _alive(pid)


def test_process_stopped_when_the_caller_raises() -> None:
    server = EmbeddedMongo()
    with pytest.raises(RuntimeError, match="boom"), server:
        pid = server.pid
        raise RuntimeError("boom")
    assert pid is not None and not _alive(pid)


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(EmbeddedDBError, match=f"port {port} .* already in use") as info:
            EmbeddedMongo(port=port).start()
    assert "\n" not in str(info.value)


def test_missing_install_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_db, "secantus_installed", lambda: False)
    with pytest.raises(EmbeddedDBError, match="SecantusDB is not installed"):
        EmbeddedMongo().start()


def test_server_dying_during_start_is_reported_and_cleaned_up(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    server = EmbeddedMongo(storage_path=str(blocker / "sub"), start_timeout=20)
    with pytest.raises(EmbeddedDBError, match="exited during start") as info:
        server.start()
    assert "\n" not in str(info.value)
    assert server.pid is None and not server.running


def test_non_loopback_host_refused() -> None:
    with pytest.raises(EmbeddedDBError, match="only loopback"):
        EmbeddedMongo(host="0.0.0.0").start()


def test_external_unreachable_names_host_not_password() -> None:
    uri = "mongodb://alice:s3cret@127.0.0.1:9/?directConnection=true"
    with pytest.raises(EmbeddedDBError) as info:
        ExternalMongo(uri, timeout_ms=300).start()
    assert "127.0.0.1:9" in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.asyncio
async def test_unreachable_uri_fails_within_selection_timeout() -> None:
    uri = "mongodb://bob:hunter2@127.0.0.1:9/?directConnection=true"
    client = create_client(uri, serverSelectionTimeoutMS=400)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await ping(client, uri)
    finally:
        await close_client(client)
    assert time.monotonic() - started < 5  # bounded by the selection timeout, not a hang
    assert "127.0.0.1:9" in str(info.value)
    assert "hunter2" not in str(info.value) and "bob" not in str(info.value)


def test_hosts_of_strips_credentials_and_options() -> None:
    assert hosts_of("mongodb://u:p@h1:1,h2:2/db?x=1") == "h1:1,h2:2"
    assert (
        hosts_of("mongodb+srv://u:p%40x@cluster.example.net/?retryWrites=true")
        == "cluster.example.net"
    )
    assert hosts_of("mongodb://localhost") == "localhost"


def test_backend_detection_from_build_info() -> None:
    assert backend_from_build_info({"version": "8.2.11", "secantusVersion": "0.7.0b3"}).label == (
        "SecantusDB 0.7.0b3"
    )
    mongod = backend_from_build_info({"version": "7.0.5"})
    assert (mongod.name, mongod.version) == ("mongod", "7.0.5")


def test_session_server_backend_is_labelled(mongo_server) -> None:
    assert mongo_server.backend.name in ("SecantusDB", "mongod")
