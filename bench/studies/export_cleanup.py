"""Old-export cleanup while other requests run (report 8.1, spec 6.16): on the loop vs a thread.

The platform's exports folder gets ``files`` old ZIP files (older than the retention, so
all are due), and one op is one cleanup sweep (``ExportManager.cleanup()``, what the
periodic task runs: glob, stat and unlink every file, then mark their export logs) while
one client sends ``k`` light requests back to back (a catalog product lookup). ``k`` is
calibrated once per parameter point so the requests outlast a sweep; one sample is the
mean latency of a light request over that window. The files are put back for every op by
hard-linking them from a stash in a worker thread (harness work, the same in both arms).
The files are small (1 KB): unlinking multi-MB files costs more.

Counters from two more cycles (refill + sweep; the refill's hard links run in a worker
thread and do not block the loop): files deleted (exact), sweep duration, the event-loop
lag during a cycle with no other traffic (p99, max; heartbeat 5 ms), the platform calls
handed to a worker thread (exact: 0 on the loop, 1 in a thread), and the light requests
served during a cycle.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bench.studies._platform import (
    calibrate,
    during,
    job_counters,
    product_lookup,
    start_platform,
)
from bench.study import Arm, Params, Study
from platform_core.seed import seed_demo_data

PRODUCTS = 500
_state: dict[tuple[int, int], dict[str, Any]] = {}


def _stash(folder: Path, files: int) -> list[str]:
    """``files`` export-like ZIP files, 48 h old (hard links share the old mtime)."""
    folder.mkdir(parents=True, exist_ok=True)
    old = time.time() - 48 * 3600
    names = []
    for i in range(files):
        name = f"catalog-20240101T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{i:08x}.zip"
        path = folder / name
        path.write_bytes(b"PK\x05\x06" + b"\x00" * 1020)
        os.utime(path, (old, old))
        names.append(name)
    return names


def _refill(stash: Path, target: Path, names: list[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.link(stash / name, target / name)


async def _setup(ctx: Any, params: Params) -> None:
    await seed_demo_data(ctx.db, experiments=("catalog",), users=0, admins=0,
                         docs_per_collection=PRODUCTS, configs=False)  # fmt: skip
    _state[(id(ctx), int(params["files"]))] = {}


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    files = int(params["files"])
    state = _state[(id(ctx), files)]
    platform = await start_platform(ctx, shared_db=True, export_cleanup_strategy=variant)
    try:
        exports = platform.service.exports
        stash = platform.data_dir / "stash"
        names = await asyncio.to_thread(_stash, stash, files)
        light = product_lookup(platform, PRODUCTS)
        deleted: list[int] = []
        sweep_s: list[float] = []

        async def sweep() -> None:
            started = time.perf_counter()
            removed = await exports.cleanup()
            sweep_s.append(time.perf_counter() - started)
            deleted.append(len(removed))
            if len(removed) != files:
                raise AssertionError(f"cleanup removed {len(removed)} of {files} files")

        async def cycle() -> None:
            await asyncio.to_thread(_refill, stash, exports.exports_dir, names)
            await sweep()

        if "k" not in state:
            state["k"] = await calibrate(cycle, light, factor=1.0)
        k = int(state["k"])
    except BaseException:
        await platform.close()
        raise

    async def op() -> None:
        await during(cycle, light, k)

    async def counters() -> dict[str, float]:
        values = await job_counters(cycle, light, "cleanup")
        values["sweep_ms"] = sweep_s[-1] * 1000.0
        values["files_deleted"] = deleted[-1]
        values["light_requests_per_op"] = k
        return values

    return Arm(op=op, counters=counters, close=platform.close, ops_per_call=k)


STUDY = Study(
    name="export_cleanup",
    knob="export_cleanup",
    description="Light requests while N old export files are swept on the loop or in a thread.",
    make_arm=_make_arm,
    setup=_setup,
    params={"files": (200, 2000)},
    quick_params={"files": (500,)},
    ops_per_block=2,
    quick_ops_per_block=1,
    metric="seconds per light request during a cleanup",
)
