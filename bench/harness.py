"""One bench run from start to finish: database, optional latency proxy, studies, results.

``run_bench`` is the plain synchronous entry point used by the CLI, scripts and notebook
cells alike (inside a running event loop it uses nest-asyncio rather than failing).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.characterise import characterise
from bench.embedded_db import MongoServer, database
from bench.meta import ProcessCPU, base_meta
from bench.results import RunWriter
from bench.runner import (
    RunAborted,
    RunOptions,
    StudyContext,
    harness_overhead_ns,
    now_iso,
    progress_bar,
    run_study,
)
from bench.studies import select
from bench.study import Study
from platform_core.db.client import close_client, create_client
from platform_core.settings import Settings


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, also inside a Jupyter kernel."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import nest_asyncio

    nest_asyncio.apply(loop)
    return loop.run_until_complete(coro)


@contextlib.contextmanager
def _study_uri(
    server: MongoServer, rtt_ms: float
) -> Iterator[tuple[str, dict[str, Any] | None, int | None]]:
    """The URI studies use: direct, or through a latency proxy (with its measured overhead
    and its pid, so the CPU it uses can be recorded)."""
    if rtt_ms <= 0:
        yield server.uri, None, None
        return
    from bench.proxy import LatencyProxy, measure_overhead

    overhead = measure_overhead(server.uri, rtt_ms=rtt_ms)
    with LatencyProxy(server.uri, rtt_ms=rtt_ms) as proxy:
        yield proxy.uri_for(server.uri), overhead, proxy.pid


def run_bench(
    names: list[str],
    options: RunOptions | None = None,
    *,
    uri: str | None = None,
) -> dict[str, Any]:
    """Run the named studies (``["all"]`` for every one) and return the run document.

    The document is also written to ``results/<run-id>/run.json``. Raises
    ``UnknownStudy`` before anything starts if a name is wrong.
    """
    options = options or RunOptions()
    studies = select(names)
    writer = RunWriter(options.results_root)
    meta: dict[str, Any] = {
        "run_id": writer.run_id,
        **base_meta(options.command_line),
        "started": now_iso(),
        "mode": "quick" if options.quick else "standard",
        "rtt_ms": options.rtt_ms,
        "studies": [s.name for s in studies],
        "platform_defaults": Settings().active_knobs(),
    }
    doc: dict[str, Any] = {
        "run_id": writer.run_id,
        "results_dir": str(writer.dir.resolve()),
        "backend": None,
        "rtt_ms": options.rtt_ms,
        "studies": [],
        "errors": [],
        "interrupted": False,
        "aborted": None,
    }
    try:
        with database(uri) as server:
            backend = server.backend
            doc["backend"] = backend.as_dict()
            meta["backend"] = backend.as_dict()
            meta["direct_uri_hosts"] = server.uri.split("/")[2]
            with _study_uri(server, options.rtt_ms) as (study_uri, proxy_overhead, proxy_pid):
                meta["proxy_overhead"] = proxy_overhead
                writer.write_meta(meta)
                processes = ProcessCPU(db=server.pid, proxy=proxy_pid)
                run_sync(
                    _run_all(studies, server.uri, study_uri, options, writer, meta, doc, processes)
                )
    except KeyboardInterrupt:
        doc["interrupted"] = True
    finally:
        meta["finished"] = now_iso()
        meta["interrupted"] = doc["interrupted"]
        meta["aborted"] = doc["aborted"]
        meta["errors"] = doc["errors"]
        writer.flush()
        writer.write_meta(meta)
        writer.write_run_doc(doc)
    return doc


async def _run_all(
    studies: list[Study],
    direct_uri: str,
    study_uri: str,
    options: RunOptions,
    writer: RunWriter,
    meta: dict[str, Any],
    doc: dict[str, Any],
    processes: ProcessCPU,
) -> None:
    rng = random.Random(options.seed if options.seed is not None else secrets.randbits(32))
    client = create_client(study_uri, serverSelectionTimeoutMS=5_000)
    scratch = Path(tempfile.mkdtemp(prefix="workbench-bench-"))
    try:
        meta["harness_overhead_ns_per_op"] = await harness_overhead_ns()
        meta["backend_characterisation"] = await characterise(
            client[f"wb_char_{writer.run_id[-6:]}"], quick=options.quick
        )
        writer.write_meta(meta)
        total = sum(len(s.grid(options.quick)) * (options.block_cap + 1) for s in studies)
        with progress_bar(options.progress) as bar:
            task = bar.add_task("studies", total=total)
            for study in studies:
                bar.update(task, description=study.name)
                ctx = StudyContext(
                    uri=study_uri, direct_uri=direct_uri,
                    db_name=f"wb_{study.name}_{writer.run_id[-6:]}", client=client,
                    rtt_ms=options.rtt_ms, quick=options.quick, scratch=scratch,
                )  # fmt: skip
                cpu_before = processes.snapshot()
                started = time.perf_counter()
                try:
                    outcome = await run_study(
                        study, ctx, options, writer, rng, lambda: bar.advance(task)
                    )
                except asyncio.CancelledError:
                    doc["interrupted"] = True
                    break
                except RunAborted as exc:
                    doc["aborted"] = str(exc)
                    break
                cpu = processes.used_since(cpu_before, time.perf_counter() - started)
                meta.setdefault("cpu", {})[study.name] = cpu
                for entry in outcome.entries:
                    entry["cpu"] = cpu
                doc["studies"].extend(_with_overhead(outcome.entries, meta))
                if outcome.error:
                    doc["errors"].append({"study": study.name, "error": outcome.error})
                    writer.errors.append({"study": study.name, "error": outcome.error})
                    print(f"study {study.name} failed: {outcome.error}", file=sys.stderr)
                writer.flush()
                writer.write_run_doc(doc)
    finally:
        with contextlib.suppress(Exception):
            await close_client(client)
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def _with_overhead(entries: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Attach the harness's own share of each baseline operation (target ≤ 2%)."""
    overhead_ns = meta.get("harness_overhead_ns_per_op") or 0.0
    for entry in entries:
        # A timed call covering k inner operations spreads the timing cost over k.
        per_op_ns = overhead_ns / max(1, entry.get("ops_per_call", 1))
        base_ms = entry.get("baseline_median_ms") or 0.0
        entry["harness_overhead_pct"] = (
            round(per_op_ns / (base_ms * 1e6) * 100, 3) if base_ms else None
        )
    return entries
