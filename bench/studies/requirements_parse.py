"""Platform requirements parsed at import vs lazily (report 3.2, spec 6.8).

``platform_core.export.requirements`` reads the platform's own requirement list (the
installed distribution's ``Requires-Dist`` metadata, there is no requirements.txt) either
while it is imported (``at_import``, as the reference's ``MASTER_REQUIREMENTS``) or on the
first call (``lazy``); the variant comes from ``KNOBS=requirements_parse=<variant>``.

One op imports that module in a FRESH process: a child forked from a parent that has
imported the platform's settings, knob registry and the ``platform_core.export`` package
(which a real import pulls in first anyway), so the sample is fork + the module's own
import. Counters (medians of 5 more children, measured inside them): the import time, the
first ``master_requirements()`` call, and their sum (lazy only moves the work to the
first call), and whether the list was computed during the import (exact). Expected:
microseconds to a few milliseconds, once per process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.studies._platform import shared_fork_server
from bench.study import Arm, Params, Study

CODE = """
import os, time
import platform_core.export
import platform_core.settings
import platform_core.tuning.registry


def run(args):
    os.environ["KNOBS"] = "requirements_parse=" + args["variant"]
    started = time.perf_counter()
    import platform_core.export.requirements as requirements
    imported = time.perf_counter()
    out = {"import_ms": (imported - started) * 1e3, "strategy": requirements.STRATEGY,
           "computed_at_import": requirements._AT_IMPORT is not None}
    if args["first_call"]:
        packages = requirements.master_requirements()
        out["first_call_ms"] = (time.perf_counter() - imported) * 1e3
        out["packages"] = len(packages)
    return out
"""
COUNTER_CHILDREN = 5


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    server, release = await shared_fork_server(ctx, CODE)

    async def op() -> None:
        answer = await server.call(variant=variant, first_call=False)
        if answer["strategy"] != variant:
            raise AssertionError(f"child used {answer['strategy']!r}, not {variant!r}")

    async def counters() -> dict[str, float]:
        runs = [await server.call(variant=variant, first_call=True)
                for _ in range(COUNTER_CHILDREN)]  # fmt: skip
        imports = [r["import_ms"] for r in runs]
        calls = [r["first_call_ms"] for r in runs]
        return {
            "import_ms": float(np.median(imports)),
            "first_call_ms": float(np.median(calls)),
            "import_plus_first_call_ms": float(np.median(np.add(imports, calls))),
            "packages": runs[-1]["packages"],
            "computed_at_import": float(runs[-1]["computed_at_import"]),
        }

    return Arm(op=op, counters=counters, close=release)


STUDY = Study(
    name="requirements_parse",
    knob="requirements_parse",
    description="Import of the export requirements module in a fresh (forked) process.",
    make_arm=_make_arm,
    ops_per_block=10,
    quick_ops_per_block=3,
    metric="seconds per module import (fresh process)",
)
