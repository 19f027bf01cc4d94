"""The workbench harness: plain synchronous entry points for scripts and notebook cells.

    from bench import database, run_bench, load_run, RunOptions
    doc = run_bench(["calibration"], RunOptions(quick=True))
    run = load_run()            # the latest run: .samples, .effects, .counters, .meta

Inside a Jupyter kernel (an event loop is already running) ``run_bench`` uses nest-asyncio
instead of failing.
"""

from bench.embedded_db import EmbeddedDBError, EmbeddedMongo, ExternalMongo, database
from bench.harness import run_bench, run_sync
from bench.results import Run, list_runs, load_run
from bench.runner import RunOptions
from bench.study import Arm, Study

__all__ = [
    "Arm",
    "EmbeddedDBError",
    "EmbeddedMongo",
    "ExternalMongo",
    "Run",
    "RunOptions",
    "Study",
    "database",
    "list_runs",
    "load_run",
    "run_bench",
    "run_sync",
]
