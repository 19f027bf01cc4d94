"""Backend characterisation: what the database itself contributes to every number.

Recorded in each run's ``meta.json`` so a reader can tell a slow platform from a slow
server: point-op latency, ``$in`` cost at 10 and 100 keys, and the throughput ceiling at
1, 10 and 50 concurrent tasks.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

COLLECTION = "wb_characterise"


async def characterise(db: Any, *, quick: bool = True) -> dict[str, Any]:
    coll = db[COLLECTION]
    await coll.drop()
    await coll.insert_many([{"_id": i, "k": i, "pad": "x" * 64} for i in range(1000)])
    try:
        point = await _timed(lambda i: coll.find_one({"_id": i % 1000}), 100 if quick else 400)
        in10 = await _timed(
            lambda i: _to_list(coll.find({"_id": {"$in": list(range(i, i + 10))}})),
            20 if quick else 60,
        )
        in100 = await _timed(
            lambda i: _to_list(coll.find({"_id": {"$in": list(range(i, i + 100))}})),
            10 if quick else 30,
        )
        window = 0.6 if quick else 2.0
        throughput = {str(n): await _throughput(coll, n, window) for n in (1, 10, 50)}
    finally:
        await coll.drop()
    return {
        "point_op_ms": point,
        "in_10_keys_ms": in10,
        "in_100_keys_ms": in100,
        "throughput_ops_per_s": throughput,
        "throughput_window_s": window,
    }  # fmt: skip


async def _to_list(cursor: Any) -> list[Any]:
    return await cursor.to_list(None)


async def _timed(make: Any, n: int) -> dict[str, float]:
    await make(0)  # warm the connection
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await make(i)
        samples.append(time.perf_counter() - started)
    arr = np.asarray(samples) * 1000
    return {"median": float(np.median(arr)), "p95": float(np.percentile(arr, 95)), "n": n}


async def _throughput(coll: Any, concurrency: int, window: float) -> float:
    done = 0
    deadline = time.perf_counter() + window

    async def worker(seed: int) -> None:
        nonlocal done
        i = seed
        while time.perf_counter() < deadline:
            await coll.find_one({"_id": i % 1000})
            done += 1
            i += 7

    started = time.perf_counter()
    await asyncio.gather(*(worker(s) for s in range(concurrency)))
    return round(done / (time.perf_counter() - started), 1)
