"""The A/B harness end to end against the real DB: verdicts, errors, results, interruption."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import studies as studies_pkg
from bench.embedded_db import EmbeddedMongo
from bench.harness import run_bench
from bench.results import list_runs, load_run
from bench.runner import RunOptions, block_orders
from bench.studies import UnknownStudy
from bench.study import Arm, Study


def _sleep_arm(extra: dict[str, float]):
    async def make(ctx, params, variant):
        delay = extra[variant]

        async def op() -> None:
            await ctx.db.points.find_one({"_id": 1})
            if delay:
                end = time.perf_counter() + delay
                while time.perf_counter() < end:
                    pass

        return Arm(op=op)

    return make


FAST_SLOW = Study(
    name="t_fast_slow", knob=None, description="a variant 2 ms slower",
    make_arm=_sleep_arm({"a": 0.0, "b": 0.002}), variants=("a", "b"), baseline="a",
    ops_per_block=10, quick_ops_per_block=10,
)  # fmt: skip


async def _boom(ctx, params, variant):
    raise RuntimeError("study exploded on purpose")


BROKEN = Study(name="t_broken", knob=None, description="raises", make_arm=_boom,
               variants=("a", "b"), baseline="a")  # fmt: skip


@pytest.fixture
def fake_studies(monkeypatch: pytest.MonkeyPatch):
    table = {s.name: s for s in (FAST_SLOW, BROKEN)}
    monkeypatch.setattr(studies_pkg, "all_studies", lambda: dict(table))
    return table


def _opts(tmp_path: Path, **kw) -> RunOptions:
    return RunOptions(quick=True, progress=False, profile=True, results_root=tmp_path,
                      seed=7, **kw)  # fmt: skip


def test_detects_a_known_slowdown_and_writes_results(fake_studies, mongodb_uri, tmp_path) -> None:
    doc = run_bench(["t_fast_slow"], _opts(tmp_path), uri=mongodb_uri)
    assert doc["errors"] == [] and not doc["interrupted"]
    # harness studies (no knob) also report their A/A pair as a row
    rows = {e["variant"]: e for e in doc["studies"]}
    assert set(rows) == {"b", "baseline_aa"}
    entry = rows["b"]
    assert entry["verdict"] == "slower"
    assert entry["effect"]["ci_low"] > 1.0
    assert entry["counters"]["a"]["db_commands_per_op"] == 1.0
    assert doc["backend"]["name"] in ("SecantusDB", "mongod")

    run = load_run(doc["results_dir"])
    assert set(run.samples["arm"]) == {"a", "b", "baseline_aa"}
    assert run.samples["warmup"].any() and (~run.samples["warmup"]).any()
    assert {"git", "packages", "machine", "backend", "backend_characterisation",
            "harness_overhead_ns_per_op", "rtt_ms", "started", "finished"} <= set(run.meta)  # fmt: skip
    char = run.meta["backend_characterisation"]
    assert set(char["throughput_ops_per_s"]) == {"1", "10", "50"}
    assert char["in_100_keys_ms"]["median"] > 0
    assert (run.dir / "profiles" / "t_fast_slow__a.html").stat().st_size > 1000
    # the CPU each process used during the study is recorded (DB is a local process here
    # unless MONGODB_URI points elsewhere; no proxy without --rtt-ms)
    cpu = run.meta["cpu"]["t_fast_slow"]
    assert cpu["harness_cpu_s"] > 0 and cpu["wall_s"] > 0 and cpu["proxy_cpu_s"] is None
    assert entry["cpu"] == cpu and isinstance(cpu["saturated"], list)
    assert json.loads((run.dir / "run.json").read_text())["run_id"] == doc["run_id"]


def test_runs_never_overwrite_each_other(fake_studies, mongodb_uri, tmp_path) -> None:
    first = run_bench(["t_fast_slow"], _opts(tmp_path, max_blocks=6), uri=mongodb_uri)
    second = run_bench(["t_fast_slow"], _opts(tmp_path, max_blocks=6), uri=mongodb_uri)
    assert first["run_id"] != second["run_id"]
    assert len(list_runs(tmp_path)) == 2
    assert load_run(root=tmp_path).run_id == second["run_id"]  # latest by default


def test_failing_study_is_recorded_and_others_continue(fake_studies, mongodb_uri, tmp_path) -> None:
    doc = run_bench(["t_broken", "t_fast_slow"], _opts(tmp_path, max_blocks=6), uri=mongodb_uri)
    assert doc["errors"] == [
        {"study": "t_broken", "error": "RuntimeError: study exploded on purpose"}
    ]
    assert {e["study"] for e in doc["studies"]} == {"t_fast_slow"}
    assert load_run(doc["results_dir"]).errors[0]["study"] == "t_broken"


def test_unknown_study_lists_valid_names(fake_studies) -> None:
    with pytest.raises(UnknownStudy, match="valid: all, t_fast_slow, t_broken"):
        run_bench(["nope"], RunOptions())


def test_database_dying_mid_run_aborts_and_keeps_results(monkeypatch, tmp_path) -> None:
    server = EmbeddedMongo().__enter__()
    calls = {"n": 0}

    async def make(ctx, params, variant):
        async def op() -> None:
            calls["n"] += 1
            if calls["n"] == 40:
                await asyncio.to_thread(server.stop)
            await ctx.db.points.find_one({"_id": 1})

        return Arm(op=op)

    dying = Study(name="t_dying", knob=None, description="kills the DB", make_arm=make,
                  variants=("a", "b"), baseline="a", ops_per_block=5, quick_ops_per_block=5)  # fmt: skip
    monkeypatch.setattr(
        studies_pkg, "all_studies", lambda: {"t_dying": dying, "t_fast_slow": FAST_SLOW}
    )
    try:
        doc = run_bench(["t_dying", "t_fast_slow"], _opts(tmp_path), uri=server.uri)
    finally:
        server.stop()
    assert doc["aborted"] and "stopped answering" in doc["aborted"]
    assert doc["studies"] == []  # the second study never ran
    run = load_run(doc["results_dir"])
    assert len(run.samples) > 0 and run.meta["aborted"]


def test_block_orders_are_counterbalanced() -> None:
    import random

    orders = block_orders(["a", "b", "c"], random.Random(1))
    first, second = next(orders), next(orders)
    assert second == first[::-1] and sorted(first) == ["a", "b", "c"]


def test_ctrl_c_stops_cleanly_and_keeps_results(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    env["WORKBENCH_RESULTS"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "bench", "calibration", "--budget", "60", "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob("*/meta.json")):
        time.sleep(0.2)
    time.sleep(4)  # inside the study by now
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["interrupted"] is True and meta["finished"]
    # the DB child of that process is gone too
    left = subprocess.run(["pgrep", "-f", f"secantus.*{proc.pid}"], capture_output=True)
    assert left.stdout == b""


def test_sync_entry_point_works_inside_a_running_loop(tmp_path, mongodb_uri) -> None:
    """What a notebook cell does: call the sync API while a loop is running (nest-asyncio)."""
    script = f"""
import asyncio, json
from bench import RunOptions, run_bench, load_run

async def cell():
    doc = run_bench(["calibration"], RunOptions(quick=True, progress=False, profile=False,
                    budget_s=2, max_blocks=6, results_root=__import__("pathlib").Path({str(tmp_path)!r})),
                    uri={mongodb_uri!r})
    print(json.dumps({{"n": len(doc["studies"]), "run": load_run(doc["results_dir"]).run_id}}))

asyncio.run(cell())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                          cwd=Path(__file__).parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["n"] == 3 and out["run"]
