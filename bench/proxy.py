"""A TCP proxy that adds a fixed one-way delay per direction, for latency-injection studies.

Why it exists: ``tc netem`` is not available in this kernel and toxiproxy cannot be installed
(STACK_NOTES), yet studies must show what a real network round trip does to N+1 query
patterns. This proxy sits between the platform and the database and holds every chunk of
bytes for ``delay`` before passing it on.

Why it looks like this:

* It is its **own process**, never a thread in the process being measured: in-process it
  would share the GIL and the CPU with the platform and distort the very latency it adds.
  :class:`LatencyProxy` starts it (``python -I bench/proxy.py``, standard library only, see
  :func:`proxy_command`) and stops it on every exit path.
* It is a **pipe with latency, not a throttle**: each chunk is released no earlier than its
  own arrival plus the delay, so back-to-back chunks do not add up their delays, and bytes
  keep their order per direction (the delay is constant: arrival order = release order).
* Precise timers without threads. STACK_NOTES: a ``select()`` loop added the delay plus
  ~0.6–0.9 ms and asyncio rounds timers to ~1 ms; both come from waiting in epoll, whose
  timeout is whole milliseconds. This loop is one thread with one selector and one timer
  heap; it waits with ``select()`` (microsecond timeouts) on the epoll descriptor, with the
  process's timer slack at 1 ns (Linux otherwise adds up to 50 µs to each wait), wakes a
  little before a release (the lateness it has observed, at most ``--spin-us``) and polls
  until the chunk is due. A chunk's arrival is the kernel's receive timestamp
  (SO_TIMESTAMPNS), not the moment this process woke up to read it, so the ~0.1–0.2 ms an
  idle process takes to wake is not added to every delayed chunk.
  A first version used a reader and a writer thread per direction, as first suggested.
  Measured against this loop on an echo server at 2 ms RTT (same machine, interleaved):
  10 connections, ~290 vs ~110 µs of proxy CPU per round trip; 50 connections, 2.0k vs
  7.1k round trips/s, 15.5 vs 4.8 ms median, the threads saturating a core (hand-offs
  between threads, and a spinning thread keeps the GIL from the one whose chunk is due).
* FIN is delayed like data and passed on as a half-close (``shutdown(SHUT_WR)``); a reset or
  error on either side closes both (with RST). ``TCP_NODELAY`` is set on both sockets so
  Nagle's algorithm cannot add its own delay to small driver messages. A slow receiver
  stalls its sender (at most 8 MiB buffered per direction), as on a real network.
* Only loopback addresses are accepted for listening and for the target: the proxy is a
  measurement tool, not a way to expose or reach anything beyond this machine.

Command line (prints one ``READY host:port`` line on stdout once listening; SIGTERM or
SIGINT closes the listener and every connection and exits 0; bad arguments exit 2)::

    python -m bench.proxy --target-host 127.0.0.1 --target-port 27017 --rtt-ms 2
    python -m bench.proxy --listen-port 0 --target-port 27017 --delay-ms-up 1 --delay-ms-down 0.5

From the harness::

    with LatencyProxy(mongodb_uri, rtt_ms=2) as proxy:
        client = MongoClient(proxy.uri_for(mongodb_uri))

:func:`measure_overhead` measures the proxy's own cost (A/A at 0 ms vs direct) and the latency
a configured delay really adds; its result is meant for each run's ``meta.json``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import functools
import heapq
import ipaddress
import itertools
import os
import platform
import random
import select
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

try:
    from bench.processes import (
        PR_SET_TIMERSLACK,
        child_preexec,
        is_loopback_host,
        libc_prctl,
        terminate,
    )
except ImportError:  # run as a script (python -I bench/proxy.py): the repo root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.processes import (
        PR_SET_TIMERSLACK,
        child_preexec,
        is_loopback_host,
        libc_prctl,
        terminate,
    )

__all__ = [
    "LatencyProxy",
    "ProxyError",
    "is_loopback_host",
    "main",
    "measure_overhead",
    "proxy_command",
    "rewrite_mongodb_uri",
]

READY_PREFIX = "READY"
DEFAULT_SPIN_US = 50.0  # at most this much of each wait is spent polling (module docstring)
RECV_BYTES = 256 * 1024
MAX_QUEUED_BYTES = 8 * 1024 * 1024  # per direction: a slow reader stalls the sender, not RAM
CONNECT_TIMEOUT_S = 5.0


class ProxyError(RuntimeError):
    """A one-line, actionable reason why the latency proxy could not be used."""


# --------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------
def _check_loopback(role: str, host: str) -> None:
    if not is_loopback_host(host):
        raise ProxyError(
            f"refusing {role} address {host!r}: only loopback addresses are allowed "
            "(127.0.0.0/8, ::1, localhost)"
        )


def _socket_address(host: str) -> tuple[socket.AddressFamily, str]:
    """The family and literal address for a (loopback) host; ``localhost`` means 127.0.0.1."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return socket.AF_INET, "127.0.0.1"
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    return family, host


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host_port(netloc: str, default_port: int = 27017) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host without brackets, port)."""
    netloc = netloc.strip()
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif netloc.count(":") == 1:
        host, port = netloc.split(":")
    else:
        host, port = netloc, ""
    if not host:
        raise ProxyError(f"no host in {netloc!r}")
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ProxyError(f"invalid port in {netloc!r}") from None


def _parse_mongodb_uri(uri: str) -> tuple[str, str, str]:
    """Split ``mongodb://[userinfo@]hosts[/path][?query]`` into (userinfo@, hosts, tail).

    Parsed by hand, like ``platform_core.db.client.hosts_of``: pymongo's parser would resolve
    ``mongodb+srv`` names through DNS, and all we need is to swap the host list.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("mongodb", "mongodb+srv"):
        raise ProxyError(f"not a mongodb:// URI: {uri.split('?', 1)[0]!r}")
    if scheme.lower() == "mongodb+srv":
        raise ProxyError(
            "mongodb+srv:// URIs resolve to several hosts through DNS and cannot be proxied: "
            "use a mongodb://host:port URI"
        )
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo = ""
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        userinfo = creds + "@"
    return userinfo, netloc, tail


def _target_of(target: str | tuple[str, int]) -> tuple[str, int]:
    """The single (host, port) behind a URI, a ``host:port`` string or a tuple."""
    if isinstance(target, tuple):
        host, port = target
        return host.strip("[]"), int(port)
    if "://" in target:
        _, netloc, _ = _parse_mongodb_uri(target)
        if "," in netloc:
            raise ProxyError(
                f"the URI names several hosts ({netloc}): the proxy forwards to one server"
            )
        return _split_host_port(netloc)
    return _split_host_port(target)


def _same_endpoint(a: tuple[str, int], b: tuple[str, int]) -> bool:
    def norm(host: str) -> str:
        host = host.strip("[]").lower()
        return "127.0.0.1" if host == "localhost" else str(ipaddress.ip_address(host))

    try:
        return a[1] == b[1] and norm(a[0]) == norm(b[0])
    except ValueError:
        return a[1] == b[1] and a[0].lower() == b[0].lower()


def rewrite_mongodb_uri(uri: str, host: str, port: int) -> str:
    """``uri`` with its host list replaced by ``host:port``; credentials, path, options kept.

    ``directConnection=true`` is added if the URI lacks it: SecantusDB (and any replica-set
    member) advertises its own address, and a driver doing discovery would connect there
    and silently bypass the proxy. An explicit ``directConnection=false`` is an error.
    """
    userinfo, netloc, tail = _parse_mongodb_uri(uri)
    if "," in netloc:
        raise ProxyError(f"the URI names several hosts ({netloc}): the proxy forwards to one")
    path, _, query = tail.partition("?")
    options = [opt for opt in query.split("&") if opt]
    direct = [opt for opt in options if opt.split("=", 1)[0].lower() == "directconnection"]
    if any(opt.split("=", 1)[-1].lower() != "true" for opt in direct):
        raise ProxyError(
            "directConnection=false would let the driver bypass the proxy: "
            "use directConnection=true"
        )
    if not direct:
        options.append("directConnection=true")
    return f"mongodb://{userinfo}{_format_address(host, port)}{path or '/'}?{'&'.join(options)}"


# --------------------------------------------------------------------------------------
# The proxy process
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Config:
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int
    delay_up_s: float
    delay_down_s: float
    spin_s: float
    exit_on_stdin_eof: bool


# Kernel receive timestamps (Linux): the arrival time of a chunk is when the kernel got it,
# not when this loop woke up to read it. Waking an idle process takes ~0.1–0.2 ms here; a
# router does not sleep, so without this every delayed chunk would carry that extra lag.
# SO_TIMESTAMPNS is 35 in asm-generic (x86, arm, arm64, riscv); Python does not export it.
_SO_TIMESTAMPNS: int | None = (
    35
    if sys.platform.startswith("linux")
    and platform.machine().lower() in ("x86_64", "amd64", "aarch64", "arm64", "riscv64")
    else None
)
_STAMP_STRUCT = struct.Struct("@ll")  # struct timespec {time_t tv_sec; long tv_nsec}
_STAMP_CMSG_SPACE = socket.CMSG_SPACE(_STAMP_STRUCT.size) if hasattr(socket, "CMSG_SPACE") else 0
_MAX_STAMP_AGE_NS = 50_000_000
_STEP_NS = 100_000  # the wall clock moved this much against the monotonic one: a step
_wall_offset_ns = [time.time_ns() - time.perf_counter_ns()]  # at the previous stamped read


def _kernel_arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """``perf_counter`` time at which the kernel received the data just read.

    The stamp is CLOCK_REALTIME, so it becomes an age (wall now − stamp) subtracted from the
    monotonic now. A wall-clock step forward would make that age too large and release the
    chunk early, so if the wall−monotonic offset moved since the previous read (a step, or a
    long slew) the read time is used instead; the age is also capped at 50 ms. The read time
    is always safe: it is later than the true arrival, never earlier. With several segments
    in one read the stamp is the last one's: again later, never earlier.
    """
    mono_ns = time.perf_counter_ns()
    wall_ns = time.time_ns()
    offset = wall_ns - mono_ns
    previous, _wall_offset_ns[0] = _wall_offset_ns[0], offset
    now = mono_ns / 1e9
    if abs(offset - previous) > _STEP_NS:
        return now
    for level, kind, raw in ancillary:
        if (
            level == socket.SOL_SOCKET
            and kind == _SO_TIMESTAMPNS
            and len(raw) >= _STAMP_STRUCT.size
        ):
            sec, nsec = _STAMP_STRUCT.unpack_from(raw)
            age_ns = wall_ns - (sec * 1_000_000_000 + nsec)
            return now - min(max(age_ns, 0), _MAX_STAMP_AGE_NS) / 1e9
    return now


class _Pipe:
    """One direction of one connection: bytes from ``src`` go to ``dst`` ``delay_s`` later.

    ``queue`` holds (release time, chunk) in arrival order; ``None`` stands for the peer's
    FIN, delayed like data. ``out`` holds released bytes the kernel has not taken yet.
    """

    __slots__ = (
        "backlog",
        "conn",
        "delay_s",
        "dst",
        "eof_in",
        "fin_due",
        "fin_sent",
        "out",
        "queue",
        "scheduled",
        "src",
        "stamped",
    )

    def __init__(self, conn: _Conn, src: socket.socket, dst: socket.socket, delay_s: float) -> None:
        self.conn = conn
        self.src = src
        self.dst = dst
        self.delay_s = delay_s
        self.queue: deque[tuple[float, bytes | None]] = deque()
        self.out = bytearray()
        self.backlog = 0  # bytes in queue + out: above MAX_QUEUED_BYTES we stop reading src
        self.eof_in = False  # src sent FIN
        self.fin_due = False  # that FIN's release time has come: shut dst once out drains
        self.fin_sent = False
        self.scheduled = False  # the head of the queue has an entry in the timer heap
        self.stamped = False  # src delivers kernel receive timestamps (SO_TIMESTAMPNS)


class _Conn:
    """A client connection and its upstream twin (client → upstream is ``up``)."""

    __slots__ = ("client", "connected", "dead", "down", "masks", "up", "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket, cfg: _Config) -> None:
        self.client = client
        self.upstream = upstream
        self.up = _Pipe(self, client, upstream, cfg.delay_up_s)
        self.down = _Pipe(self, upstream, client, cfg.delay_down_s)
        self.connected = False
        self.dead = False
        self.masks = [0, 0]  # selector interest of client, upstream


class _ProxyServer:
    """One thread, one selector, one timer heap for every connection.

    No threads, so no hand-offs and no GIL contention between them (module docstring has the
    measurements). Timers are precise because the loop never waits in epoll with a timeout
    (whole milliseconds there, the likely source of the ~1 ms errors noted in STACK_NOTES):
    it waits with ``select()`` (microseconds) on the selector's own file descriptor, wakes
    shortly before the next release and polls until it is due.
    """

    def __init__(self, cfg: _Config) -> None:
        self.cfg = cfg
        family, addr = _socket_address(cfg.listen_host)
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((addr, cfg.listen_port))
        self.listener.listen(512)
        self.listener.setblocking(False)
        self.address = (addr, int(self.listener.getsockname()[1]))
        self.target = (_socket_address(cfg.target_host), cfg.target_port)
        self.sel = selectors.DefaultSelector()
        fileno = getattr(self.sel, "fileno", None)
        self._wait_fd: int | None = fileno() if callable(fileno) else None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.conns: set[_Conn] = set()
        self._stopping = False

    # -- loop ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Safe from a signal handler or another thread: wakes the loop, which then ends."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def serve_forever(self) -> None:
        clock = time.perf_counter
        spin_max = self.cfg.spin_s
        timers = self.timers
        # How late a timed wait wakes up (EWMA). The loop wakes that much before a release
        # and polls the rest: ~50 µs on an idle machine, near 0 on a busy one, where a fixed
        # spin would only burn CPU the database and the platform need.
        late = spin_max
        try:
            while not self._stopping:
                now = clock()
                while timers and timers[0][0] <= now:
                    heapq.heappop(timers)[2]()
                timeout: float | None = None
                if timers:
                    timeout = max(0.0, timers[0][0] - clock() - min(late, spin_max))
                start = clock()
                events = self._wait(timeout)
                if not events and timeout:  # woke by the timer: learn how late it was
                    late += 0.1 * (max(0.0, clock() - start - timeout) - late)
                for key, mask in events:
                    self._dispatch(key, mask)
        finally:
            self._close_all()

    def _wait(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        if not timeout or self._wait_fd is None:
            return self.sel.select(timeout)
        # epoll/kqueue round a timeout up to whole ms; select() on their fd takes µs.
        ready, _, _ = select.select([self._wait_fd], [], [], timeout)
        return self.sel.select(0) if ready else []

    def _at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (when, next(self._seq), action))

    def _dispatch(self, key: selectors.SelectorKey, events: int) -> None:
        if key.data == "accept":
            self._accept()
            return
        if key.data == "wake":
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)
            return
        conn, sock = key.data
        if conn.dead:  # closed earlier in this same batch of events
            return
        is_client = sock is conn.client
        if events & selectors.EVENT_WRITE:
            if not conn.connected:
                self._connected(conn)
            else:
                self._flush(conn.down if is_client else conn.up)
        if events & selectors.EVENT_READ and not conn.dead and conn.connected:
            self._read(conn.up if is_client else conn.down)
        self._update(conn)

    # -- connections -----------------------------------------------------------------
    def _accept(self) -> None:
        (family, addr), port = self.target
        for _ in range(64):  # bounded, so one burst of connects cannot starve due chunks
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE: keep serving the connections we have
                return
            client.setblocking(False)
            upstream = socket.socket(family, socket.SOCK_STREAM)
            upstream.setblocking(False)
            err = upstream.connect_ex((addr, port))
            if err not in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                client.close()  # the target refused at once: the client sees its socket close
                upstream.close()
                continue
            conn = _Conn(client, upstream, self.cfg)
            self.conns.add(conn)
            self._update(conn)  # waits for the upstream connect to finish (writable)
            self._at(time.perf_counter() + CONNECT_TIMEOUT_S, lambda c=conn: self._give_up(c))

    def _connected(self, conn: _Conn) -> None:
        if conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._close(conn)
            return
        conn.connected = True
        for sock in (conn.client, conn.upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for pipe in (conn.up, conn.down):
            if pipe.delay_s > 0 and _SO_TIMESTAMPNS is not None:
                with contextlib.suppress(OSError):
                    pipe.src.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                    pipe.stamped = True

    def _give_up(self, conn: _Conn) -> None:
        if not conn.connected:
            self._close(conn)

    def _update(self, conn: _Conn) -> None:
        """Register each socket for exactly what it is waiting for (nothing: unregistered)."""
        for i, (sock, reading, writing) in enumerate(
            ((conn.client, conn.up, conn.down), (conn.upstream, conn.down, conn.up))
        ):
            mask = 0
            if conn.dead:
                pass
            elif not conn.connected:
                mask = selectors.EVENT_WRITE if i == 1 else 0
            else:
                if not reading.eof_in and reading.backlog < MAX_QUEUED_BYTES:
                    mask |= selectors.EVENT_READ
                if writing.out:
                    mask |= selectors.EVENT_WRITE
            old = conn.masks[i]
            if mask == old:
                continue
            if old == 0:
                self.sel.register(sock, mask, (conn, sock))
            elif mask == 0:
                self.sel.unregister(sock)
            else:
                self.sel.modify(sock, mask, (conn, sock))
            conn.masks[i] = mask

    def _close(self, conn: _Conn, *, reset: bool = False) -> None:
        """Close both sides; ``reset`` passes an error on as RST rather than a clean FIN."""
        if conn.dead:
            return
        conn.dead = True
        for i, sock in enumerate((conn.client, conn.upstream)):
            if conn.masks[i]:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.sel.unregister(sock)
            conn.masks[i] = 0
            if reset:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()
        self.conns.discard(conn)

    def _close_all(self) -> None:
        for conn in list(self.conns):
            self._close(conn)
        with contextlib.suppress(OSError):
            self.listener.close()
        self.sel.close()

    # -- bytes -----------------------------------------------------------------------
    def _read(self, pipe: _Pipe) -> None:
        if pipe.eof_in:  # a hang-up reported on a socket we no longer read
            return
        try:
            if pipe.delay_s > 0 and pipe.stamped:
                data, ancillary, _, _ = pipe.src.recvmsg(RECV_BYTES, _STAMP_CMSG_SPACE)
                arrival = _kernel_arrival(ancillary)
            else:
                data = pipe.src.recv(RECV_BYTES)
                arrival = time.perf_counter()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(pipe.conn, reset=True)
            return
        if not data:
            pipe.eof_in = True
        pipe.backlog += len(data)
        if pipe.delay_s <= 0:
            if data:
                pipe.out += data
            else:
                pipe.fin_due = True
            self._flush(pipe)
            return
        release = arrival + pipe.delay_s
        pipe.queue.append((release, data or None))
        if not pipe.scheduled:
            pipe.scheduled = True
            self._at(release, lambda: self._release(pipe))

    def _release(self, pipe: _Pipe) -> None:
        """Timer: move every chunk now due to ``out`` and send; re-arm for the next one."""
        pipe.scheduled = False
        if pipe.conn.dead:
            return
        now = time.perf_counter()
        queue = pipe.queue
        while queue and queue[0][0] <= now:
            data = queue.popleft()[1]
            if data is None:
                pipe.fin_due = True
                break
            pipe.out += data
        if queue:
            pipe.scheduled = True
            self._at(queue[0][0], lambda: self._release(pipe))
        self._flush(pipe)
        self._update(pipe.conn)

    def _flush(self, pipe: _Pipe) -> None:
        out = pipe.out
        while out:
            try:
                sent = pipe.dst.send(out)
            except (BlockingIOError, InterruptedError):
                return  # the socket is full: _update waits for it to be writable
            except OSError:
                self._close(pipe.conn, reset=True)
                return
            del out[:sent]
            pipe.backlog -= sent
        if pipe.fin_due and not pipe.fin_sent:
            # Half-close: the other direction keeps flowing until its peer ends it too.
            pipe.fin_sent = True
            with contextlib.suppress(OSError):
                pipe.dst.shutdown(socket.SHUT_WR)
            conn = pipe.conn
            if conn.up.fin_sent and conn.down.fin_sent:
                self._close(conn)


class _UsageError(Exception):
    pass


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (argparse prints usage too)
        raise _UsageError(message)


def _parse_args(argv: Sequence[str] | None) -> _Config:
    parser = _ArgumentParser(
        prog="python -m bench.proxy",
        description="TCP proxy adding a fixed delay per direction (loopback only).",
    )
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--target-host", default="127.0.0.1")
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--rtt-ms", type=float, help="round-trip delay, split evenly")
    parser.add_argument("--delay-ms-up", type=float, help="client → server delay")
    parser.add_argument("--delay-ms-down", type=float, help="server → client delay")
    parser.add_argument(
        "--spin-us",
        type=float,
        default=DEFAULT_SPIN_US,
        help="poll for at most this long before a release, for precision (0: never)",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (the parent died): used by LatencyProxy",
    )
    ns = parser.parse_args(argv)
    if ns.rtt_ms is not None and (ns.delay_ms_up is not None or ns.delay_ms_down is not None):
        raise _UsageError("give either --rtt-ms or --delay-ms-up/--delay-ms-down, not both")
    up, down = _split_delays(ns.rtt_ms, ns.delay_ms_up, ns.delay_ms_down)
    for role, host in (("listen", ns.listen_host), ("target", ns.target_host)):
        try:
            _check_loopback(role, host)
        except ProxyError as exc:
            raise _UsageError(str(exc)) from None
    for name, port in (("--listen-port", ns.listen_port), ("--target-port", ns.target_port)):
        if not 0 <= port <= 65535 or (name == "--target-port" and port == 0):
            raise _UsageError(f"{name} {port} is not a valid port")
    if not 0 <= ns.spin_us <= 10_000:
        raise _UsageError(f"--spin-us {ns.spin_us} must be between 0 and 10000")
    return _Config(
        listen_host=ns.listen_host,
        listen_port=ns.listen_port,
        target_host=ns.target_host,
        target_port=ns.target_port,
        delay_up_s=up / 1000.0,
        delay_down_s=down / 1000.0,
        spin_s=ns.spin_us / 1e6,
        exit_on_stdin_eof=ns.exit_on_stdin_eof,
    )


def _split_delays(
    rtt_ms: float | None, up_ms: float | None, down_ms: float | None
) -> tuple[float, float]:
    """(up, down) in ms: ``rtt_ms`` splits evenly; a missing direction means 0."""
    if rtt_ms is not None:
        up_ms = down_ms = rtt_ms / 2.0
    up, down = up_ms or 0.0, down_ms or 0.0
    for name, value in (("up", up), ("down", down)):
        if not (value >= 0 and value < 60_000):  # also rejects NaN
            raise _UsageError(f"delay {name} {value} ms must be between 0 and 60000")
    return up, down


def _tune_process() -> None:
    """Timer slack 1 ns: Linux otherwise lets every timed wait overrun by up to 50 µs."""
    prctl = libc_prctl()
    if prctl is not None:
        prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)


def _watch_stdin(server: _ProxyServer) -> None:
    """Stop when stdin reaches EOF: the parent that holds its other end has gone."""
    # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader makes the
    # interpreter wait ~1 s for its lock at exit.
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    server.request_stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy until SIGTERM/SIGINT (or stdin EOF); exit 0, 1 (cannot listen), 2 (usage)."""
    try:
        cfg = _parse_args(argv)
    except _UsageError as exc:
        print(f"bench.proxy: error: {exc}", file=sys.stderr)
        return 2
    _tune_process()
    try:
        server = _ProxyServer(cfg)
    except OSError as exc:
        where = _format_address(cfg.listen_host, cfg.listen_port)
        print(
            f"bench.proxy: error: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.request_stop())
    if cfg.exit_on_stdin_eof:
        threading.Thread(target=_watch_stdin, args=(server,), daemon=True).start()
    print(f"{READY_PREFIX} {_format_address(*server.address)}", flush=True)
    server.serve_forever()
    return 0


# --------------------------------------------------------------------------------------
# The parent side
# --------------------------------------------------------------------------------------
def proxy_command() -> list[str]:
    """The command that runs this file as the proxy: ``python -I .../bench/proxy.py``.

    Why not ``python -m bench.proxy``: that imports the ``bench`` package first, whose
    ``__init__`` pulls in the harness (numpy, pandas...): seconds of start-up and idle BLAS
    thread pools inside the proxy. This file needs only the standard library; ``-I`` keeps
    the script's directory and PYTHON* variables off ``sys.path``, so no module in ``bench/``
    can shadow a standard one.
    """
    return [sys.executable, "-I", str(Path(__file__).resolve())]


_live: set[LatencyProxy] = set()


@atexit.register
def _stop_all() -> None:
    for proxy in list(_live):
        proxy.stop()


class LatencyProxy:
    """Run the proxy (:func:`proxy_command`) as a child process for a ``with`` block's life.

    ``target`` is a ``mongodb://`` URI (one host), ``"host:port"`` or ``(host, port)``; it and
    ``listen_host`` must be loopback. ``rtt_ms`` is split evenly between the two directions;
    ``delay_ms_up``/``delay_ms_down`` set them separately instead. The process is stopped with
    SIGTERM, then SIGKILL after ``stop_timeout``, on every exit path (the ``with`` block, an
    exception, Ctrl-C, interpreter exit) and dies with this process (EOF on its stdin, plus
    PR_SET_PDEATHSIG on Linux when started from the main thread).
    """

    def __init__(
        self,
        target: str | tuple[str, int],
        *,
        rtt_ms: float | None = None,
        delay_ms_up: float | None = None,
        delay_ms_down: float | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        spin_us: float = DEFAULT_SPIN_US,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.target_host, self.target_port = _target_of(target)
        _check_loopback("target", self.target_host)
        _check_loopback("listen", listen_host)
        if rtt_ms is not None and (delay_ms_up is not None or delay_ms_down is not None):
            raise ProxyError("give either rtt_ms or delay_ms_up/delay_ms_down, not both")
        try:
            self.delay_ms_up, self.delay_ms_down = _split_delays(rtt_ms, delay_ms_up, delay_ms_down)
        except _UsageError as exc:
            raise ProxyError(str(exc)) from None
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.spin_us = spin_us
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None  # of the last process, once stopped (0: clean)
        self._stderr_path: Path | None = None
        self._port: int | None = None
        self._host: str | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LatencyProxy:
        """Start the process and wait for its READY line (idempotent)."""
        if self._process is not None:
            return self
        fd, name = tempfile.mkstemp(prefix="workbench-proxy-", suffix=".stderr")
        self._stderr_path = Path(name)
        cmd = [
            *proxy_command(),
            "--listen-host", self.listen_host,
            "--listen-port", str(self.listen_port),
            "--target-host", self.target_host,
            "--target-port", str(self.target_port),
            "--delay-ms-up", repr(self.delay_ms_up),
            "--delay-ms-down", repr(self.delay_ms_down),
            "--spin-us", repr(self.spin_us),
            "--exit-on-stdin-eof",
        ]  # fmt: skip
        # PR_SET_PDEATHSIG follows the forking *thread*: from a worker thread (to_thread, an
        # executor) the proxy would die with that thread, so there only stdin EOF is used.
        try:
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,  # our end closes when we die: the child's watchdog
                stdout=subprocess.PIPE,
                stderr=fd,
                bufsize=0,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the child in order
                preexec_fn=child_preexec(),
            )
        finally:
            os.close(fd)
        _live.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProxyError(
                        f"latency proxy did not report READY within {self.start_timeout:g} s "
                        f"(stderr: {self._stderr_path})"
                    )
                if not sel.select(min(remaining, 0.1)):
                    continue
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:  # stdout closed: the process exited
                    code = process.wait(timeout=5)
                    raise ProxyError(
                        f"latency proxy exited during start (code {code}): "
                        f"{self._stderr_tail() or 'no output'}"
                    )
                buffer += chunk
        line = buffer.split(b"\n", 1)[0].decode(errors="replace").strip()
        word, _, address = line.partition(" ")
        if word != READY_PREFIX:
            raise ProxyError(f"latency proxy printed {line!r} instead of a READY line")
        host, port = _split_host_port(address)
        self._host, self._port = host, port

    def stop(self) -> None:
        """SIGTERM, wait ``stop_timeout``, then SIGKILL; safe to call more than once."""
        process, self._process = self._process, None
        _live.discard(self)
        if process is not None:
            terminate(process, self.stop_timeout)
            self.returncode = process.returncode
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._stderr_path is not None:
            with contextlib.suppress(OSError):
                self._stderr_path.unlink()
            self._stderr_path = None

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- facts ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port the proxy listens on (the free one it picked if ``listen_port=0``)."""
        if self._port is None:
            raise ProxyError("the latency proxy has not been started")
        return self._port

    @property
    def host(self) -> str:
        if self._host is None:
            raise ProxyError("the latency proxy has not been started")
        return self._host

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def rtt_ms(self) -> float:
        return self.delay_ms_up + self.delay_ms_down

    def uri_for(self, mongodb_uri: str) -> str:
        """``mongodb_uri`` pointed at this proxy (options kept, ``directConnection=true``).

        The URI must name the server this proxy forwards to, so a study cannot believe it
        adds latency to a database the proxy does not front.
        """
        _, netloc, _ = _parse_mongodb_uri(mongodb_uri)
        if "," not in netloc and not _same_endpoint(
            _split_host_port(netloc), (self.target_host, self.target_port)
        ):
            raise ProxyError(
                f"URI names {netloc} but this proxy forwards to "
                f"{_format_address(self.target_host, self.target_port)}"
            )
        return rewrite_mongodb_uri(mongodb_uri, self.host, self.port)

    def describe(self) -> dict[str, Any]:
        """The settings to record next to results (meta.json)."""
        return {
            "rtt_ms": self.rtt_ms,
            "delay_ms_up": self.delay_ms_up,
            "delay_ms_down": self.delay_ms_down,
            "spin_us": self.spin_us,
            "target": _format_address(self.target_host, self.target_port),
        }

    def _stderr_tail(self) -> str:
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        lines = [ln for ln in self._stderr_path.read_text(errors="replace").splitlines() if ln]
        return lines[-1].strip() if lines else ""

    def __repr__(self) -> str:
        where = (
            _format_address(self._host, self._port) if self._host and self._port else "not started"
        )
        return (
            f"LatencyProxy({where} → {_format_address(self.target_host, self.target_port)}, "
            f"rtt {self.rtt_ms:g} ms)"
        )


# --------------------------------------------------------------------------------------
# Measuring the proxy
# --------------------------------------------------------------------------------------
def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (like numpy's default) of already sorted values."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _summary(values_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    return {
        "median_ms": round(statistics.median(ordered), 4),
        "p95_ms": round(_percentile(ordered, 95), 4),
        "n": len(ordered),
    }


def _bootstrap_ci(values: Sequence[float], *, resamples: int = 2000) -> list[float] | None:
    """95% bootstrap interval of the mean of per-block differences (seeded: reproducible).

    None with fewer than two blocks (not NaN: the result goes into JSON).
    """
    if len(values) < 2:
        return None
    rng = random.Random(12345)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(resamples))
    return [round(_percentile(means, 2.5), 4), round(_percentile(means, 97.5), 4)]


@contextlib.contextmanager
def _probe_clients(uris: Sequence[str]) -> Iterator[list[Any]]:
    from pymongo import MongoClient

    clients: list[Any] = []
    try:
        for uri in uris:
            clients.append(
                MongoClient(
                    uri, maxPoolSize=1, serverSelectionTimeoutMS=5_000, appname="proxy-probe"
                )
            )
        yield clients
    finally:
        for client in clients:
            client.close()


def measure_overhead(
    mongodb_uri: str,
    *,
    samples: int = 200,
    blocks: int = 10,
    warmup: int = 50,
    rtt_ms: float | Sequence[float] = (),
    op: Literal["ping", "find_one"] = "ping",
    spin_us: float = DEFAULT_SPIN_US,
) -> dict[str, Any]:
    """Point-op latency direct vs through the proxy at 0 ms (its own overhead), and what each
    ``rtt_ms`` really adds, measured in interleaved blocks.

    Every arm (direct, proxy at 0 ms, proxy at each ``rtt_ms``) has its own synchronous
    client with one connection. Each of ``blocks`` rounds runs ``samples`` operations per arm,
    the arm order alternating forwards and backwards (ABC CBA ...) so slow drift in the
    machine hits every arm alike; ``warmup`` operations per arm are discarded first.
    ``op="find_one"`` reads one document by ``_id`` from a scratch collection instead of a
    ``ping``. Returns plain JSON-able numbers (ms): per arm median/p95 over all samples, and
    per proxy arm the added median/p95 over direct plus the per-block paired differences
    (median and a 95% bootstrap interval of their mean).

    Reading ``excess_over_rtt_ms`` (added − configured): it is not all the proxy's. The proxy
    releases a chunk within µs of its due time; the rest is its two extra hops (the 0 ms
    arm) and the client and the server waking up after sitting idle for the round trip,
    which they would do behind a real network too (here a direct ping after 2 ms idle took
    ~0.9 ms instead of ~0.3 ms).
    """
    if samples < 1 or blocks < 1 or warmup < 0:
        raise ValueError("samples and blocks must be ≥ 1, warmup ≥ 0")
    given = [rtt_ms] if isinstance(rtt_ms, int | float) else list(rtt_ms)
    rtts = list(dict.fromkeys(float(r) for r in given if r != 0))  # 0 ms is always measured
    scratch_db = f"workbench_proxy_probe_{os.getpid()}"
    with contextlib.ExitStack() as stack:
        proxies = [
            stack.enter_context(LatencyProxy(mongodb_uri, rtt_ms=r, spin_us=spin_us))
            for r in [0.0, *rtts]
        ]
        arms = ["direct", "proxy_0ms", *(f"proxy_{r:g}ms" for r in rtts)]
        uris = [mongodb_uri, *(p.uri_for(mongodb_uri) for p in proxies)]
        clients = stack.enter_context(_probe_clients(uris))
        if op == "find_one":
            setup = clients[0][scratch_db]["probe"]
            setup.replace_one({"_id": 1}, {"_id": 1, "payload": "x" * 100}, upsert=True)
            stack.callback(clients[0].drop_database, scratch_db)
            calls = [
                functools.partial(c[scratch_db]["probe"].find_one, {"_id": 1}) for c in clients
            ]
        else:
            calls = [functools.partial(c.admin.command, "ping") for c in clients]

        clock = time.perf_counter_ns
        for call in calls:
            for _ in range(warmup):
                call()
        per_arm: list[list[float]] = [[] for _ in arms]
        per_block: list[list[float]] = [[] for _ in arms]  # block medians
        order = list(range(len(arms)))
        for block in range(blocks):
            for i in order if block % 2 == 0 else reversed(order):
                call = calls[i]
                times = []
                for _ in range(samples):
                    t0 = clock()
                    call()
                    times.append((clock() - t0) / 1e6)
                per_arm[i].extend(times)
                per_block[i].append(statistics.median(times))

    direct = _summary(per_arm[0])
    result: dict[str, Any] = {
        "op": op,
        "samples_per_block": samples,
        "blocks": blocks,
        "warmup": warmup,
        "spin_us": spin_us,
        "direct": direct,
    }
    for i, arm in enumerate(arms[1:], start=1):
        arm_summary = _summary(per_arm[i])
        diffs = [b - a for a, b in zip(per_block[0], per_block[i], strict=True)]
        arm_rtt = 0.0 if i == 1 else rtts[i - 2]
        added = round(arm_summary["median_ms"] - direct["median_ms"], 4)
        arm_summary.update(
            {
                "rtt_ms": arm_rtt,
                "added_median_ms": added,
                "added_p95_ms": round(arm_summary["p95_ms"] - direct["p95_ms"], 4),
                "excess_over_rtt_ms": round(added - arm_rtt, 4),
                "block_added_median_ms": round(statistics.median(diffs), 4),
                "block_added_mean_ci95_ms": _bootstrap_ci(diffs),
            }
        )
        result[arm] = arm_summary
    result["overhead_median_ms"] = result["proxy_0ms"]["added_median_ms"]
    result["injected"] = [
        {
            "rtt_ms": r,
            "added_median_ms": result[f"proxy_{r:g}ms"]["added_median_ms"],
            "excess_over_rtt_ms": result[f"proxy_{r:g}ms"]["excess_over_rtt_ms"],
        }
        for r in rtts
    ]
    return result


if __name__ == "__main__":
    sys.exit(main())
