"""Experiment export while other requests run (report 3.1, spec 6.7): on the loop vs a thread.

The catalog experiment gets a realistic payload: ``static_mb`` of static files (half
compressible scripts, half incompressible images) and ``docs`` products to dump. One op
is one export (``POST /admin/api/export/catalog`` as an admin: collection discovery,
dump, JSON, ZIP, log entry) started while one anonymous client sends ``k`` light
requests back to back (a product lookup by SKU); the op ends when both are done. ``k``
is calibrated once per parameter point (export time / light-request time, each alone),
so one sample is the mean latency of a light request over a window that holds one whole
export. On the loop, the requests that arrive during the build wait for all of it; in a
thread they go on, but the build's pure-Python JSON encoding still competes for the GIL
and the dump keeps the database busy in both variants, so the *mean* moves little: the
difference is in the worst waits, which the counters show.

Counters from one more export: its duration, the light requests served during it, their
median and worst latency, the event-loop lag (p99, max; heartbeat 5 ms) and the platform
calls handed to a worker thread (exact: 0 on the loop, 1 in a thread).
"""

from __future__ import annotations

import random
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
from platform_core.experiments.testing import copy_samples
from platform_core.seed import seed_demo_data

_state: dict[tuple[int, str], dict[str, Any]] = {}


def _key(ctx: Any, params: Params) -> tuple[int, str]:
    return id(ctx), f"{params['docs']}-{params['static_mb']}"


def write_payload(static: Path, megabytes: float, seed: int = 31) -> int:
    """Generated static files: half text (compresses ~3x), half random bytes (does not)."""
    rng = random.Random(seed)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
        for _ in range(2000)
    ]
    chunk = 256 * 1024
    files = max(2, round(megabytes * 1024 * 1024 / chunk))
    for i in range(files):
        if i % 2 == 0:
            text = " ".join(rng.choice(words) for _ in range(chunk // 7))
            (static / f"bundle{i:02d}.js").write_text(text[:chunk])
        else:
            (static / f"photo{i:02d}.jpg").write_bytes(rng.randbytes(chunk))
    return files


async def _setup(ctx: Any, params: Params) -> None:
    docs = int(params["docs"])
    root = ctx.scratch / f"export_build_{docs}_{params['static_mb']}"
    if not root.exists():
        copy_samples(root, ("catalog",))
        write_payload(root / "catalog" / "static", float(params["static_mb"]))
    await seed_demo_data(ctx.db, experiments=("catalog",), users=0, admins=0,
                         docs_per_collection=docs, configs=False)  # fmt: skip
    _state[_key(ctx, params)] = {"root": root}


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    state = _state[_key(ctx, params)]
    platform = await start_platform(ctx, experiments_dir=state["root"], shared_db=True,
                                    export_build_strategy=variant)  # fmt: skip
    try:
        admin = await platform.admin_client()
        light = product_lookup(platform, int(params["docs"]))
        exports = platform.data_dir / "exports"
        sizes: list[int] = []

        async def export() -> None:
            response = await admin.post("/admin/api/export/catalog")
            if response.status_code != 200:
                raise AssertionError(f"export failed: {response.status_code} {response.text[:200]}")
            body = response.json()
            sizes.append(int(body["file_size"]))
            (exports / body["filename"]).unlink(missing_ok=True)

        if "k" not in state:  # one k for every arm of this parameter point
            state["k"] = await calibrate(export, light, factor=1.0)
        k = int(state["k"])
    except BaseException:
        await platform.close()
        raise

    async def op() -> None:
        await during(export, light, k)

    async def counters() -> dict[str, float]:
        values = await job_counters(export, light, "export")
        values["light_requests_per_op"] = k
        values["zip_mb"] = sizes[-1] / 1e6
        return values

    return Arm(op=op, counters=counters, close=platform.close, ops_per_call=k)


STUDY = Study(
    name="export_build",
    knob="export_build",
    description="Light requests while an export (static files + dump) is built on the loop "
    "or in a thread.",
    make_arm=_make_arm,
    setup=_setup,
    params={"docs": (10_000,), "static_mb": (3,)},
    quick_params={"docs": (1_000,), "static_mb": (0.5,)},
    ops_per_block=1,
    quick_ops_per_block=1,
    metric="seconds per light request during an export",
)
