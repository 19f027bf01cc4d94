"""Calibration: the harness measuring slowdowns it knows the size of.

Every arm does the same point read plus a fixed busy-wait; the ``plus5pct`` and
``plus20pct`` arms busy-wait longer by 5% and 20% of the baseline's median operation
time (measured once before the arms are built). A report shows these next to the real
studies so a reader can see the harness's resolution: the A/A arm should say "no
significant change", +20% should be detected, and +5% sits near the 3% threshold.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.study import Arm, Params, Study

BASE_SPIN_S = 0.0004  # fixed CPU work so the known slowdown is not drowned by DB jitter
COLLECTION = "calibration_points"
_baseline_median: dict[int, float] = {}


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _setup(ctx: Any, params: Params) -> None:
    coll = ctx.db[COLLECTION]
    await coll.drop()
    await coll.insert_many([{"_id": i, "v": i} for i in range(200)])
    samples = []
    for i in range(60):
        started = time.perf_counter()
        await coll.find_one({"_id": i % 200})
        _spin(BASE_SPIN_S)
        samples.append(time.perf_counter() - started)
    _baseline_median[id(ctx)] = float(np.median(samples[10:]))


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    coll = ctx.db[COLLECTION]
    extra = {"same": 0.0, "plus5pct": 0.05, "plus20pct": 0.20}[variant]
    spin = BASE_SPIN_S + extra * _baseline_median[id(ctx)]
    state = {"i": 0}

    async def op() -> None:
        state["i"] += 1
        await coll.find_one({"_id": state["i"] % 200})
        _spin(spin)

    async def counters() -> dict[str, float]:
        return {"injected_slowdown_pct": extra * 100}

    return Arm(op=op, counters=counters)


STUDY = Study(
    name="calibration",
    knob=None,
    description="A/A and known +5%/+20% slowdowns: the harness's own resolution.",
    make_arm=_make_arm,
    variants=("same", "plus5pct", "plus20pct"),
    baseline="same",
    setup=_setup,
    ops_per_block=30,
    quick_ops_per_block=20,
    metric="point read + fixed work",
)
