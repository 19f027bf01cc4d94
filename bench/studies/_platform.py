"""Helpers for studies that run the platform itself (not a study: the name starts with _).

* :func:`start_platform`: the app of ``create_app`` with an ``ExperimentService``
  installed with forced strategies, its lifespan entered, and an ``httpx`` client over
  ``ASGITransport`` (in-process, no server). ``close()`` leaves nothing behind: clients
  closed, database dropped (unless shared with the study), lifespan exited, temp folder
  removed.
* :func:`during`: one background job (an export, a cleanup sweep, a login) while one
  client sends ``k`` light requests back to back; the op of the "does X stall the event
  loop?" studies. :func:`calibrate` picks ``k`` so the light requests outlast the job;
  :func:`job_counters` runs the job alone under a loop-lag monitor (how long it blocks
  the loop, how many platform calls went to a worker thread), then once more with light
  requests (their latencies).
* :func:`python_child`: a fresh Python process that prints one JSON line (cold starts);
  :class:`ForkServer`: a parent process that imports once and forks a fresh child per
  call (how pre-fork servers start workers), so a study can time what happens in a fresh
  process after the imports without paying ~0.5-1 s of imports per sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from platform_core.observability import LoopLagMonitor

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "bench-admin-pass-1"
BASE_URL = "http://testserver"
_serial = itertools.count(1)
_quiet = {"depth": 0, "level": logging.NOTSET}


def _quiet_logs(on: bool) -> None:
    """Platform warnings (a slow-command line per 10k-document dump...) would flood the
    bench's stderr: they are raised to ERROR while study platforms run, then restored."""
    logger = logging.getLogger("platform_core")
    if on:
        if _quiet["depth"] == 0:
            _quiet["level"] = logger.level
            logger.setLevel(logging.ERROR)
        _quiet["depth"] += 1
        return
    _quiet["depth"] = max(0, _quiet["depth"] - 1)
    if _quiet["depth"] == 0:
        logger.setLevel(_quiet["level"])


@dataclass(eq=False, slots=True)
class Platform:
    app: Any
    http: httpx.AsyncClient
    root: Path  # the experiments folder
    data_dir: Path  # the platform's DATA_DIR (exports, jinja cache, JWT secret)
    stack: contextlib.AsyncExitStack

    @property
    def service(self) -> Any:
        return self.app.state.experiment_service

    @property
    def db(self) -> Any:
        return self.app.state.db

    def client(self) -> httpx.AsyncClient:
        """Another client of the same app (its own cookies), closed with the platform."""
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL)
        self.stack.push_async_callback(client.aclose)
        return client

    async def admin_client(self) -> httpx.AsyncClient:
        client = self.client()
        await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        return client

    async def close(self) -> None:
        await self.stack.aclose()


async def login(client: httpx.AsyncClient, email: str, password: str) -> None:
    response = await client.post(
        "/auth/login", data={"email": email, "password": password, "next": "/"}
    )
    if response.status_code != 303:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:200]}")


async def start_platform(
    ctx: Any,
    *,
    samples: tuple[str, ...] = ("catalog",),
    experiments_dir: Path | None = None,
    shared_db: bool = False,
    strategies: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    **service_options: Any,
) -> Platform:
    """A started platform app for one arm (see module docstring).

    ``samples`` are copied into the arm's temp folder unless ``experiments_dir`` is given;
    ``shared_db`` uses the study's database (data seeded once in the study's setup, dropped
    by the runner) instead of a database of its own; ``strategies`` force variants of
    ``PlatformStrategies``, ``service_options`` those of ``ExperimentService.install``.
    bcrypt runs at 4 rounds and rate limits are off unless ``settings`` say otherwise.
    """
    from platform_core.app import PlatformStrategies, create_app
    from platform_core.experiments.service import ExperimentService
    from platform_core.experiments.testing import copy_samples

    stack = contextlib.AsyncExitStack()
    folder = Path(tempfile.mkdtemp(prefix="platform-", dir=ctx.scratch))
    stack.callback(shutil.rmtree, folder, True)
    _quiet_logs(True)
    stack.callback(_quiet_logs, False)
    try:
        root = experiments_dir or copy_samples(folder / "experiments", samples)
        db_name = ctx.db_name if shared_db else f"{ctx.db_name}_{next(_serial)}"
        values: dict[str, Any] = {
            "mongodb_db": db_name, "data_dir": folder / "data", "experiments_dir": root,
            "bcrypt_rounds": 4, "admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD,
            "rate_limits_enabled": False,  # a study logs in and exports far more than 5/min
        }  # fmt: skip
        values.update(settings or {})
        conf = ctx.settings(**values)
        chosen = replace(PlatformStrategies.from_settings(conf), **dict(strategies or {}))
        app = create_app(conf, strategies=chosen)
        ExperimentService.install(app, **service_options)
        await stack.enter_async_context(app.router.lifespan_context(app))
        if not shared_db:
            stack.push_async_callback(_drop_database, app, db_name)
        await app.state.experiment_service.wait_for_background()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
        stack.push_async_callback(http.aclose)
    except BaseException:
        await stack.aclose()
        raise
    return Platform(app=app, http=http, root=Path(root), data_dir=folder / "data", stack=stack)


async def _drop_database(app: Any, name: str) -> None:
    client = app.state.client
    if client is not None:
        with contextlib.suppress(Exception):
            await client.drop_database(name)


def product_lookup(platform: Platform, products: int) -> Callable[[], Awaitable[None]]:
    """The light request of these studies: one catalog product by SKU (an indexed
    ``find_one`` behind the experiment's access policy), cycling through the products."""
    state = {"i": 0}

    async def light() -> None:
        state["i"] = (state["i"] + 1) % products
        response = await platform.http.get(
            f"/experiments/catalog/api/products/SKU-{state['i']:05d}"
        )
        if response.status_code != 200:
            raise AssertionError(f"light request failed: {response.status_code}")

    return light


# --- a job while light requests run ----------------------------------------------------
async def during(
    job: Callable[[], Awaitable[Any]], light: Callable[[], Awaitable[Any]], k: int
) -> None:
    """Start ``job``, send ``k`` light requests back to back, then wait for the job."""
    task = asyncio.ensure_future(job())
    try:
        for _ in range(k):
            await light()
    finally:
        await task


async def calibrate(
    job: Callable[[], Awaitable[Any]],
    light: Callable[[], Awaitable[Any]],
    *,
    factor: float = 1.5,
    low: int = 10,
    high: int = 400,
) -> int:
    """Light requests per op: enough for ``factor`` times the job's duration when alone."""
    await job()  # warm caches, connections and the code path
    started = time.perf_counter()
    await job()
    await job()
    job_s = (time.perf_counter() - started) / 2
    lats = []
    for _ in range(12):
        t = time.perf_counter()
        await light()
        lats.append(time.perf_counter() - t)
    per_light = float(np.median(lats[2:]))
    return max(low, min(high, math.ceil(factor * job_s / max(per_light, 1e-4))))


async def job_counters(
    job: Callable[[], Awaitable[Any]],
    light: Callable[[], Awaitable[Any]],
    name: str,
    *,
    interval: float = 0.005,
) -> dict[str, float]:
    """Two more runs of ``job``. First alone under a loop-lag heartbeat (every ``interval``
    s): its duration, how long it blocks the event loop (lag p99/max; with no other
    traffic, so the lag is the job's own) and its platform calls handed to a worker
    thread. Then while one client sends light requests back to back until it is done:
    how many were served and their median and worst latency."""
    monitor = LoopLagMonitor(interval=interval)
    with count_offloads() as offloads:
        async with monitor:
            started = time.perf_counter()
            await job()
            job_s = time.perf_counter() - started
            await asyncio.sleep(2 * interval)  # a beat that was due during a final stall
    lag = monitor.stats()
    latencies: list[float] = []
    task = asyncio.ensure_future(job())
    while not task.done():
        t = time.perf_counter()
        await light()
        latencies.append(time.perf_counter() - t)
    await task
    ms = np.asarray(latencies, dtype=float) * 1000.0
    return {
        f"{name}_ms": job_s * 1000.0,
        "loop_lag_p99_ms": lag.p99_ms,
        "loop_lag_max_ms": lag.max_ms,
        f"platform_calls_offloaded_per_{name}": float(offloads["calls"]),
        f"light_requests_during_{name}": float(ms.size),
        "light_p50_ms": float(np.percentile(ms, 50)),
        "light_max_ms": float(ms.max()),
    }


@contextlib.contextmanager
def count_offloads() -> Iterator[dict[str, int]]:
    """Count the running loop's ``run_in_executor`` calls (what ``asyncio.to_thread`` uses)
    whose target is platform code: the exact proof that work left the event loop."""
    loop = asyncio.get_running_loop()
    counted = {"calls": 0}
    original = loop.run_in_executor

    def counting(executor: Any, func: Any, *args: Any) -> Any:
        target = func.args[0] if isinstance(func, functools.partial) and func.args else func
        if str(getattr(target, "__module__", "")).startswith("platform_core"):
            counted["calls"] += 1
        return original(executor, func, *args)

    loop.run_in_executor = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        del loop.run_in_executor  # the class's method again


# --- fresh processes ---------------------------------------------------------------------
async def python_child(
    code: str, *args: str, scratch: Path, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -c code args...`` in a fresh process; its last stdout line is JSON.

    Compiled bytecode is kept in ``scratch/pycache`` (``PYTHONPYCACHEPREFIX``), so only
    the first child compiles the sources, as in a deployment with ``.pyc`` files, even
    where ``PYTHONDONTWRITEBYTECODE`` is set, and nothing is written into the source tree.
    """
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    child_env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    child_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, env=child_env, cwd=str(scratch),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"child process failed ({proc.returncode}): {err.decode()[-800:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


_FORK_LOOP = """
import json as _json, os as _os, sys as _sys
_sys.stdout.write("ready\\n")
_sys.stdout.flush()
for _line in _sys.stdin:
    _args = _json.loads(_line)
    _pid = _os.fork()
    if _pid == 0:
        try:
            _out = {"ok": True, **run(_args)}
        except BaseException as _exc:
            _out = {"ok": False, "error": repr(_exc)}
        _sys.stdout.write(_json.dumps(_out) + "\\n")
        _sys.stdout.flush()
        _os._exit(0)
    _os.waitpid(_pid, 0)
"""


class ForkServer:
    """``code`` (imports, and ``def run(args: dict) -> dict``) runs once in a new process;
    each :meth:`call` forks it and runs ``run(args)`` in the fresh child, which answers
    one JSON line and exits. Close it with :meth:`close` (the parent then exits)."""

    def __init__(self, proc: asyncio.subprocess.Process, errors: Path) -> None:
        self._proc = proc
        self._errors = errors

    @classmethod
    async def start(
        cls, code: str, *, scratch: Path, env: Mapping[str, str] | None = None
    ) -> ForkServer:
        child_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        child_env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        child_env.update(env or {})
        errors = scratch / f"forkserver-{next(_serial)}.err"
        with errors.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code + _FORK_LOOP, env=child_env, cwd=str(scratch),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
            )  # fmt: skip
        server = cls(proc, errors)
        assert proc.stdout is not None
        if await proc.stdout.readline() != b"ready\n":
            await server.close()
            raise RuntimeError(f"fork server did not start: {errors.read_text()[-800:]}")
        return server

    async def call(self, **args: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(args).encode() + b"\n")
        await self._proc.stdin.drain()
        line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server exited: {self._errors.read_text()[-800:]}")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise RuntimeError(f"forked child failed: {answer.get('error')}")
        return answer

    async def close(self) -> None:
        proc = self._proc
        if proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), timeout=5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._errors.unlink(missing_ok=True)


_shared_servers: dict[tuple[int, str], list[Any]] = {}


async def shared_fork_server(
    ctx: Any, code: str
) -> tuple[ForkServer, Callable[[], Awaitable[None]]]:
    """One :class:`ForkServer` for every arm of a study run (the parent only imports and
    forks; every call gets a fresh child), and the ``release`` of one arm's share."""
    key = (id(ctx), code)
    entry = _shared_servers.get(key)
    if entry is None:
        entry = _shared_servers[key] = [await ForkServer.start(code, scratch=ctx.scratch), 0]
    entry[1] += 1

    async def release() -> None:
        entry[1] -= 1
        if entry[1] == 0 and _shared_servers.get(key) is entry:
            del _shared_servers[key]
            await entry[0].close()

    return entry[0], release
