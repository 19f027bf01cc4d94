"""The latency-injection proxy against the real database, as its own process.

What matters here is the mechanism, not speed: bytes arrive unchanged and in order, FIN is
passed on, many connections work, the configured delay really is added (a lower bound only:
this machine is too noisy for upper bounds on timings), non-loopback addresses are refused,
and no proxy process is ever left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import ServerSelectionTimeoutError
from pymongo.monitoring import ConnectionPoolListener

import bench.proxy as proxy_module
from bench.proxy import (
    LatencyProxy,
    ProxyError,
    is_loopback_host,
    measure_overhead,
    proxy_command,
)
from platform_core.db.client import close_client, create_client, hosts_of

ROOT = Path(__file__).resolve().parent.parent


# -- helpers ----------------------------------------------------------------------------
def _gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (exited and reaped, or a zombie awaiting its reaper)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    return False


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


def _client(uri: str, **options: Any) -> MongoClient[dict[str, Any]]:
    return MongoClient(uri, serverSelectionTimeoutMS=5_000, **options)


@pytest.fixture(scope="module")
def db_uri(mongodb_uri: str) -> str:
    """The test server's URI; the proxy only fronts loopback servers (skip a remote one)."""
    host = hosts_of(mongodb_uri).split(",")[0].rsplit(":", 1)[0]
    if not is_loopback_host(host):
        pytest.skip(f"MONGODB_URI names {host}: the latency proxy only fronts loopback servers")
    return mongodb_uri


@pytest.fixture
def scratch_db(db_uri: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with _client(db_uri) as c:
        c.drop_database(name)


# -- data and connections ---------------------------------------------------------------
def test_data_passes_through_unchanged(db_uri: str, scratch_db: str) -> None:
    """Documents from 10 bytes to ~6 MB (many recv chunks) round-trip bit for bit, delayed."""
    rng = random.Random(7)
    docs = [
        {"_id": i, "blob": rng.randbytes(size)} for i, size in enumerate((10, 70_000, 6_000_000))
    ]
    with LatencyProxy(db_uri, rtt_ms=1) as proxy, _client(proxy.uri_for(db_uri)) as c:
        coll = c[scratch_db]["things"]
        coll.insert_many(docs)
        back = list(coll.find().sort("_id", 1))
    assert back == docs


def test_twenty_concurrent_connections_at_zero_delay(db_uri: str, scratch_db: str) -> None:
    """20 clients (one connection each, plus their monitors) hammer the proxy at once."""
    clients = 20
    ops = 25
    barrier = threading.Barrier(clients)

    def worker(n: int) -> int:
        with _client(proxy.uri_for(db_uri), maxPoolSize=1) as c:
            coll = c[scratch_db]["things"]
            c.admin.command("ping")
            barrier.wait(timeout=20)
            for i in range(ops):
                coll.insert_one({"_id": f"{n}-{i}", "n": n, "i": i})
                assert coll.find_one({"_id": f"{n}-{i}"})["i"] == i  # type: ignore[index]
            return coll.count_documents({"n": n})

    with (
        LatencyProxy(db_uri, rtt_ms=0) as proxy,
        ThreadPoolExecutor(max_workers=clients) as pool,
    ):
        counts = list(pool.map(worker, range(clients)))
    assert counts == [ops] * clients
    with _client(db_uri) as c:
        assert c[scratch_db]["things"].count_documents({}) == clients * ops


def test_async_pool_of_fifty_through_delayed_proxy(db_uri: str, scratch_db: str) -> None:
    """The platform's case: an async driver pool growing to 50 connections behind a 2 ms RTT."""

    class PoolCounter(ConnectionPoolListener):
        created = 0

        def connection_created(self, event: Any) -> None:
            PoolCounter.created += 1

        def __getattr__(self, name: str) -> Any:  # every other pool event: ignore
            return lambda event: None

    async def run(uri: str) -> list[Any]:
        client = create_client(
            uri,
            event_listeners=[PoolCounter()],
            maxPoolSize=50,
            maxConnecting=50,
            serverSelectionTimeoutMS=5_000,
        )
        try:
            coll = client[scratch_db]["things"]
            await coll.insert_many([{"_id": i} for i in range(50)])
            return await asyncio.gather(*(coll.find_one({"_id": i % 50}) for i in range(300)))
        finally:
            await close_client(client)

    with LatencyProxy(db_uri, rtt_ms=2) as proxy:
        found = asyncio.run(run(proxy.uri_for(db_uri)))
    assert [doc["_id"] for doc in found] == [i % 50 for i in range(300)]
    assert PoolCounter.created > 25, PoolCounter.created


def test_half_close_and_byte_order_are_kept() -> None:
    """A FIN from each side gets through (after the delay) and 1 MB in 1,000 pieces keeps order.

    The target is a tiny loopback server that reads until EOF, then answers with everything it
    got and closes: it only answers if the client's FIN reached it, and the client only sees
    EOF if the server's FIN came back.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn:
            received = bytearray()
            while chunk := conn.recv(65536):
                received += chunk
            conn.sendall(bytes(received))

    server = threading.Thread(target=serve_once, daemon=True)
    server.start()
    payload = b"".join(i.to_bytes(4, "big") * 256 for i in range(1000))  # 1,000 distinct pieces
    try:
        with LatencyProxy(("127.0.0.1", port), delay_ms_up=2, delay_ms_down=1) as proxy:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
                for i in range(0, len(payload), 1024):
                    sock.sendall(payload[i : i + 1024])
                sock.shutdown(socket.SHUT_WR)
                echoed = bytearray()
                while chunk := sock.recv(65536):
                    echoed += chunk
        server.join(timeout=10)
    finally:
        listener.close()
    assert bytes(echoed) == payload


def test_unreachable_target_closes_client_connection(db_uri: str) -> None:
    """A target that refuses connections: the client's connection closes, the proxy lives on."""
    dead_port = socket.create_server(("127.0.0.1", 0))
    port = dead_port.getsockname()[1]
    dead_port.close()
    with LatencyProxy(("127.0.0.1", port)) as proxy:
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        with pytest.raises(ServerSelectionTimeoutError):
            with MongoClient(proxy.uri_for(uri), serverSelectionTimeoutMS=500) as c:
                c.admin.command("ping")
        assert proxy.running


# -- the delay --------------------------------------------------------------------------
def test_rtt_adds_at_least_the_configured_delay(db_uri: str) -> None:
    """A 4 ms RTT makes a ping's median round trip ≥ 3.5 ms slower than direct (lower bound only)."""
    result = measure_overhead(db_uri, samples=40, blocks=4, warmup=10, rtt_ms=4)
    assert result["proxy_4ms"]["added_median_ms"] >= 3.5
    assert result["proxy_4ms"]["block_added_median_ms"] >= 3.5
    assert result["injected"] == [
        {
            "rtt_ms": 4.0,
            "added_median_ms": result["proxy_4ms"]["added_median_ms"],
            "excess_over_rtt_ms": result["proxy_4ms"]["excess_over_rtt_ms"],
        }
    ]
    for arm in ("direct", "proxy_0ms", "proxy_4ms"):
        assert result[arm]["n"] == 160
        assert 0 < result[arm]["median_ms"] <= result[arm]["p95_ms"]
    assert result["overhead_median_ms"] == result["proxy_0ms"]["added_median_ms"]
    assert len(result["proxy_0ms"]["block_added_mean_ci95_ms"]) == 2


# -- refusals ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["--target-host", "10.1.2.3"],
        ["--target-host", "example.com"],  # names other than localhost are not resolved
        ["--listen-host", "0.0.0.0"],
        ["--listen-host", "::"],
        ["--listen-host", "192.168.1.10"],
    ],
)
def test_refuses_non_loopback_addresses(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert proxy_module.main(["--target-port", "27017", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "only loopback addresses" in lines[0], err


@pytest.mark.parametrize(
    "args",
    [
        ["--target-port", "1", "--rtt-ms", "2", "--delay-ms-up", "1"],
        ["--target-port", "1", "--rtt-ms", "-1"],
        ["--target-port", "nope"],
        [],
    ],
)
def test_usage_errors_are_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert proxy_module.main(args) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("entry", ["module", "file"])
def test_cli_entry_points_exit_2_with_one_line(entry: str) -> None:
    """``python -m bench.proxy`` (documented) and the file form LatencyProxy runs."""
    command = [sys.executable, "-m", "bench.proxy"] if entry == "module" else proxy_command()
    proc = subprocess.run(
        [*command, "--target-port", "27017", "--target-host", "10.1.2.3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "only loopback addresses" in proc.stderr


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": ("10.0.0.1", 27017)},
        {"target": "mongodb://db.example.com:27017/?directConnection=true"},
        {"target": "127.0.0.1:27017", "listen_host": "0.0.0.0"},
    ],
)
def test_manager_refuses_non_loopback_before_starting(
    kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_popen(*args: object, **kw: object) -> None:
        raise AssertionError("no process may be started")

    monkeypatch.setattr(proxy_module.subprocess, "Popen", no_popen)
    target = kwargs.pop("target")
    with pytest.raises(ProxyError, match="only loopback"):
        LatencyProxy(target, **kwargs).start()


# -- lifecycle --------------------------------------------------------------------------
def test_cli_prints_ready_and_stops_on_sigterm_and_sigint(db_uri: str) -> None:
    host, port = hosts_of(db_uri).rsplit(":", 1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen(
            [*proxy_command(), "--listen-port", "0",
             "--target-host", host, "--target-port", port, "--rtt-ms", "1"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            word, address = proc.stdout.readline().split()
            assert word == "READY" and address.startswith("127.0.0.1:")
            proxy_port = int(address.rsplit(":", 1)[1])
            assert proxy_port > 0
            with _client(f"mongodb://{address}/?directConnection=true&retryWrites=false") as c:
                assert c.admin.command("ping")["ok"] == 1
            # Stop with a connection still open: it must be closed, not keep the proxy alive.
            with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as held:
                time.sleep(0.1)  # let the proxy connect it upstream
                proc.send_signal(sig)
                assert proc.wait(timeout=10) == 0
                assert held.recv(1) == b""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_process_is_gone_after_the_with_block(db_uri: str) -> None:
    with LatencyProxy(db_uri, rtt_ms=1) as proxy, _client(proxy.uri_for(db_uri)) as c:
        pid = proxy.pid
        assert pid is not None and proxy.running
        c.admin.command("ping")  # an open connection must not hold the stop up
    assert pid is not None and _gone(pid)
    assert not proxy.running
    assert proxy.returncode == 0  # stopped by SIGTERM, cleanly: not killed


def test_process_is_gone_after_an_exception_in_the_with_block(db_uri: str) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"):
        with LatencyProxy(db_uri) as proxy:
            assert proxy.pid is not None
            pids.append(proxy.pid)
            raise RuntimeError("boom")
    assert _gone(pids[0])
    assert proxy not in proxy_module._live


def test_process_dies_with_its_parent(db_uri: str) -> None:
    """SIGKILL the parent (no cleanup runs): the proxy must still go away on its own."""
    script = textwrap.dedent(
        f"""
        import importlib.util, sys, time
        # Load the module alone: importing the bench package would pull in the harness.
        spec = importlib.util.spec_from_file_location("wb_proxy", {str(ROOT / "bench" / "proxy.py")!r})
        module = importlib.util.module_from_spec(spec)
        sys.modules["wb_proxy"] = module
        spec.loader.exec_module(module)
        p = module.LatencyProxy({db_uri!r}).start()
        print(p.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
        parent.kill()
        parent.wait(timeout=10)
        assert _wait_gone(pid), f"proxy {pid} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_ready_timeout_is_a_clear_error_and_kills_the_process(
    db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(proxy_module.subprocess, "Popen", recording_popen)
    with pytest.raises(ProxyError, match="did not report READY within"):
        LatencyProxy(db_uri, start_timeout=0.001).start()
    assert len(started) == 1 and started[0].poll() is not None


# -- URIs -------------------------------------------------------------------------------
def test_uri_for_points_at_the_proxy_and_keeps_options(db_uri: str) -> None:
    target = hosts_of(db_uri)
    with LatencyProxy(db_uri) as proxy:
        here = f"127.0.0.1:{proxy.port}"
        assert proxy.uri_for(db_uri) == db_uri.replace(target, here)
        assert "directConnection=true" in proxy.uri_for(db_uri)
        assert (
            proxy.uri_for(
                f"mongodb://u:p%40ss@{target}/app?retryWrites=false&appname=x&directConnection=true"
            )
            == f"mongodb://u:p%40ss@{here}/app?retryWrites=false&appname=x&directConnection=true"
        )
        # Without it the driver could discover the server's advertised address and bypass us.
        assert (
            proxy.uri_for(f"mongodb://{target}/?retryWrites=false")
            == f"mongodb://{here}/?retryWrites=false&directConnection=true"
        )
        assert proxy.uri_for(f"mongodb://{target}") == f"mongodb://{here}/?directConnection=true"
        with pytest.raises(ProxyError, match="directConnection=false"):
            proxy.uri_for(f"mongodb://{target}/?directConnection=false")
        with pytest.raises(ProxyError, match="mongodb\\+srv"):
            proxy.uri_for("mongodb+srv://cluster.example.com/")
        with pytest.raises(ProxyError, match="forwards to"):
            proxy.uri_for("mongodb://127.0.0.1:1/?directConnection=true")


def test_started_from_a_worker_thread_survives_the_thread_but_not_the_parent(
    db_uri: str,
) -> None:
    """PR_SET_PDEATHSIG would kill the proxy when its *thread* ends; stdin EOF must not."""
    script = textwrap.dedent(
        f"""
        import importlib.util, sys, threading, time
        spec = importlib.util.spec_from_file_location("wb_proxy", {str(ROOT / "bench" / "proxy.py")!r})
        module = importlib.util.module_from_spec(spec)
        sys.modules["wb_proxy"] = module
        spec.loader.exec_module(module)
        box = []
        worker = threading.Thread(target=lambda: box.append(module.LatencyProxy({db_uri!r}).start()))
        worker.start()
        worker.join()
        print(box[0].pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        time.sleep(0.3)
        assert not _gone(pid), "the proxy died with the thread that started it"
        parent.kill()
        parent.wait(timeout=10)
        assert _wait_gone(pid), f"proxy {pid} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_closed_connections_release_their_sockets(db_uri: str) -> None:
    """300 connections opened and closed: the proxy's file descriptors return to baseline."""
    with LatencyProxy(db_uri, rtt_ms=1) as proxy:
        fds = Path(f"/proc/{proxy.pid}/fd")
        baseline = len(list(fds.iterdir()))
        for _ in range(3):
            socks = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(100)]
            for sock in socks:
                sock.close()
        deadline = time.monotonic() + 10
        while len(list(fds.iterdir())) > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(fds.iterdir())) <= baseline
