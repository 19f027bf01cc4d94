"""The workbench harness: plain synchronous entry points for scripts and notebook cells.

    from bench import database, run_bench, load_run, RunOptions
    doc = run_bench(["calibration"], RunOptions(quick=True))
    run = load_run()            # the latest run: .samples, .effects, .counters, .meta

Inside a Jupyter kernel (an event loop is already running) ``run_bench`` uses nest-asyncio
instead of failing.

The names are imported on first use: ``python -m bench.proxy`` and the embedded-DB
manager must start without paying for numpy, pandas and scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EmbeddedDBError": "bench.embedded_db",
    "EmbeddedMongo": "bench.embedded_db",
    "ExternalMongo": "bench.embedded_db",
    "database": "bench.embedded_db",
    "LatencyProxy": "bench.proxy",
    "run_bench": "bench.harness",
    "run_sync": "bench.harness",
    "Run": "bench.results",
    "list_runs": "bench.results",
    "load_run": "bench.results",
    "RunOptions": "bench.runner",
    "Arm": "bench.study",
    "Study": "bench.study",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
