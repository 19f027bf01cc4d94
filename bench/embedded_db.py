"""Run a real MongoDB wire-protocol server for tests, studies and the CLI.

By default this is SecantusDB, started as a *separate process* (it is written in Python
and would share the GIL with whatever it serves if run in-process). With ``MONGODB_URI``
set, that server is used instead and nothing is started.

    with database() as db:          # EmbeddedMongo or ExternalMongo
        print(db.uri, db.backend.label)

The process is stopped with SIGTERM, then SIGKILL after a timeout, on every exit path:
the ``with`` block, an exception, Ctrl-C, interpreter exit (``atexit``) and, on Linux,
the death of the parent process (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.processes import child_preexec, is_loopback_host, terminate
from platform_core.db.backend import BackendInfo, backend_from_build_info
from platform_core.db.client import build_info_sync, hosts_of, ping_sync

# Client options SecantusDB needs (STACK_NOTES): without retryWrites=false every write does
# O(n) bookkeeping; without directConnection=true the driver follows the advertised
# replica-set member and would bypass a latency proxy.
SECANTUS_URI_OPTIONS = "retryWrites=false&directConnection=true"
LOOPBACK = "127.0.0.1"


class EmbeddedDBError(RuntimeError):
    """A one-line, actionable reason why the embedded database could not run."""


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (the caller must cope with losing a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True if something listens on the port.

    SO_REUSEADDR as servers use it: without it, the TIME_WAIT sockets of a server that
    just stopped would make its port look busy for a minute.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def secantus_installed() -> bool:
    # find_spec only locates the package; it is never imported into this process.
    return importlib.util.find_spec("secantus") is not None


_live: set[EmbeddedMongo] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()


@dataclass(eq=False)
class EmbeddedMongo:
    """A SecantusDB process on a loopback port.

    ``port=None`` picks a free port (retrying if another process grabs it first); an
    explicit port that is taken is an error. ``storage_path=":memory:"`` (default) keeps
    the data in a temporary directory that the server deletes on shutdown.
    """

    host: str = LOOPBACK
    port: int | None = None
    storage_path: str = ":memory:"
    log_level: str = "WARNING"
    start_timeout: float = 30.0
    stop_timeout: float = 10.0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _workdir: Path | None = field(default=None, init=False, repr=False)
    _log_path: Path | None = field(default=None, init=False, repr=False)
    _backend: BackendInfo | None = field(default=None, init=False, repr=False)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> str:
        if self._process is not None:
            return self.uri
        if not is_loopback_host(self.host):
            raise EmbeddedDBError(f"refusing to listen on {self.host}: only loopback addresses")
        if not secantus_installed():
            raise EmbeddedDBError(
                "SecantusDB is not installed: run `make venv` (installs the [dev] extra) "
                "or set MONGODB_URI to an existing server"
            )
        if self.port is not None:
            if port_in_use(self.host, self.port):
                raise EmbeddedDBError(
                    f"port {self.port} on {self.host} is already in use: pass another port "
                    "or omit it to pick a free one"
                )
            self._spawn(self.port)
            return self.uri
        last: EmbeddedDBError | None = None
        for _ in range(3):  # a free port can be taken between probing and binding
            try:
                self._spawn(free_port(self.host))
                return self.uri
            except _PortLost as exc:
                last = EmbeddedDBError(str(exc))
        assert last is not None
        raise last

    def _spawn(self, port: int) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="workbench-secantus-"))
        self._log_path = self._workdir / "secantus.log"
        # An empty config file disables SecantusDB's auto-discovery of ./secantusd.toml,
        # so a stray file in the caller's working directory cannot change the server.
        config = self._workdir / "secantusd.toml"
        config.write_text("")
        cmd = [
            sys.executable, "-m", "secantus",
            "--config", str(config),
            "--host", self.host,
            "--port", str(port),
            "--storage-path", self.storage_path,
            "--log-level", self.log_level,
        ]  # fmt: skip
        log = self._log_path.open("wb")
        try:
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
                preexec_fn=child_preexec(),
            )
        finally:
            log.close()
        self.port = port
        _live.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                tail = self._log_tail()
                if "Address already in use" in tail:
                    raise _PortLost(f"port {self.port} was taken before SecantusDB could bind it")
                raise EmbeddedDBError(
                    f"SecantusDB exited during start (code {code}): {tail or 'no output'}"
                    f" (log: {self._log_path})"
                )
            if ping_sync(self.uri, timeout_ms=300):
                return
            time.sleep(0.1)
        raise EmbeddedDBError(
            f"SecantusDB did not answer a ping on {self.host}:{self.port} within "
            f"{self.start_timeout:.0f} s (log: {self._log_path})"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        _live.discard(self)
        if process is not None:
            terminate(process, self.stop_timeout)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- facts ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def uri(self) -> str:
        if self.port is None:
            raise EmbeddedDBError("the embedded database has not been started")
        return f"mongodb://{self.host}:{self.port}/?{SECANTUS_URI_OPTIONS}"

    @property
    def backend(self) -> BackendInfo:
        if self._backend is None:
            self._backend = backend_from_build_info(build_info_sync(self.uri))
        return self._backend

    def _log_tail(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        lines = [ln for ln in self._log_path.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""


class _PortLost(EmbeddedDBError):
    pass


@dataclass(eq=False)
class ExternalMongo:
    """A server given by ``MONGODB_URI``: nothing to start or stop, same interface."""

    uri: str
    timeout_ms: int = 5_000
    _backend: BackendInfo | None = field(default=None, init=False, repr=False)

    def start(self) -> str:
        if not ping_sync(self.uri, timeout_ms=self.timeout_ms):
            raise EmbeddedDBError(
                f"MongoDB at {hosts_of(self.uri)} (MONGODB_URI) did not answer within "
                f"{self.timeout_ms} ms: start it or unset MONGODB_URI to use the embedded one"
            )
        return self.uri

    def stop(self) -> None:
        pass

    running = True
    pid = None

    @property
    def backend(self) -> BackendInfo:
        if self._backend is None:
            self._backend = backend_from_build_info(build_info_sync(self.uri))
        return self._backend

    def __enter__(self) -> ExternalMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        pass


MongoServer = EmbeddedMongo | ExternalMongo


@contextlib.contextmanager
def database(uri: str | None = None, **embedded: object) -> Iterator[MongoServer]:
    """``MONGODB_URI`` (or ``uri``) if set, else a fresh embedded SecantusDB, stopped on exit."""
    target = uri or os.environ.get("MONGODB_URI") or None
    server: MongoServer = ExternalMongo(target) if target else EmbeddedMongo(**embedded)  # type: ignore[arg-type]
    with server:
        yield server
