"""Platform core measures: the catalog list page and the click API, cold and warm.

Against the embedded SecantusDB (or ``MONGODB_URI``), with the demo data of
``workbench seed`` (``--docs`` products and clicks), the platform app runs in-process
(``httpx.ASGITransport``, no network, default knob variants):

* COLD: the first request to a freshly started app (lifespan entered, managed indexes
  built): the experiment's config cache is empty, its collections' ``experiment_id`` index
  has not been checked in this app, its templates have not been rendered. One fresh app
  per endpoint and run; ``--cold-runs`` runs.
* WARM: steady state in one app, after ``--warmup`` requests per endpoint: ``--warm``
  sequential requests per endpoint.

Reported per endpoint: median (and p95) latency and DB commands per request, read from
the ``X-DB-Commands`` response header (commands issued before the response started).

    python -m bench.measure_platform [--json] [--cold-runs 5] [--warm 200] [--docs 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "catalog list page": ("GET", "/experiments/catalog/?page=3", None),
    "catalog list API": ("GET", "/experiments/catalog/api/products?page=3", None),
    "click API": ("POST", "/experiments/click_tracker/api/click",
                  {"page": "pricing", "element": "cta"}),
}  # fmt: skip


@contextlib.asynccontextmanager
async def _started(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    from platform_core.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        service = app.state.experiment_service
        if service is not None:
            await service.wait_for_background()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            yield client


async def _request(client: httpx.AsyncClient, name: str) -> tuple[float, int]:
    method, path, body = ENDPOINTS[name]
    started = time.perf_counter()
    response = await client.request(method, path, json=body)
    elapsed = time.perf_counter() - started
    if response.status_code >= 400:
        raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
    return elapsed, int(response.headers["X-DB-Commands"])


def _summary(samples: list[tuple[float, int]]) -> dict[str, Any]:
    ms = np.asarray([s[0] for s in samples]) * 1000.0
    commands = [s[1] for s in samples]
    return {
        "n": len(samples),
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "db_commands_median": float(statistics.median(commands)),
        "db_commands_range": [min(commands), max(commands)],
    }


async def measure(uri: str, *, docs: int, cold_runs: int, warmup: int, warm: int) -> dict:
    from platform_core.db.backend import detect_backend
    from platform_core.db.client import close_client, create_client
    from platform_core.seed import seed_demo_data
    from platform_core.settings import Settings

    db_name = f"wb_measure_{secrets.token_hex(3)}"
    data_dir = Path(tempfile.mkdtemp(prefix="workbench-measure-"))
    settings = Settings(mongodb_uri=uri, mongodb_db=db_name, data_dir=data_dir,
                        bcrypt_rounds=4, rate_limits_enabled=False)  # fmt: skip
    client = create_client(uri, serverSelectionTimeoutMS=5_000)
    platform_log = logging.getLogger("platform_core")
    level = platform_log.level
    platform_log.setLevel(logging.ERROR)  # slow-command warnings would bury the table
    try:
        backend = await detect_backend(client)
        await seed_demo_data(client[db_name], docs_per_collection=docs, users=20)
        async with _started(settings):  # first start: configs, managed indexes, caches on disk
            pass
        cold: dict[str, list[tuple[float, int]]] = {name: [] for name in ENDPOINTS}
        for _ in range(cold_runs):
            for name in ENDPOINTS:
                async with _started(settings) as http:
                    cold[name].append(await _request(http, name))
        warm_samples: dict[str, list[tuple[float, int]]] = {name: [] for name in ENDPOINTS}
        async with _started(settings) as http:
            for name in ENDPOINTS:
                for _ in range(warmup):
                    await _request(http, name)
                warm_samples[name] = [await _request(http, name) for _ in range(warm)]
        return {
            "backend": backend.as_dict(),
            "docs_per_collection": docs,
            "knobs": settings.active_knobs(),
            "endpoints": {
                name: {
                    "request": " ".join(ENDPOINTS[name][:2]),
                    "cold": _summary(cold[name]),
                    "warm": _summary(warm_samples[name]),
                }
                for name in ENDPOINTS
            },
        }
    finally:
        platform_log.setLevel(level)
        with contextlib.suppress(Exception):
            await client.drop_database(db_name)
        await close_client(client)
        shutil.rmtree(data_dir, ignore_errors=True)


def _table(doc: dict) -> str:
    head = (f"{'endpoint':<18} {'request':<48} {'cold ms':>8} {'cold cmds':>9} "
            f"{'warm ms':>8} {'warm p95':>8} {'warm cmds':>9}")  # fmt: skip
    backend = doc["backend"]
    lines = [f"backend: {backend.get('name')} {backend.get('version')}; "
             f"demo data: {doc['docs_per_collection']} docs per collection", head,
             "-" * len(head)]  # fmt: skip
    for name, row in doc["endpoints"].items():
        cold, warm = row["cold"], row["warm"]
        lines.append(f"{name:<18} {row['request']:<48} {cold['median_ms']:>8.2f} "
                     f"{cold['db_commands_median']:>9.0f} {warm['median_ms']:>8.2f} "
                     f"{warm['p95_ms']:>8.2f} {warm['db_commands_median']:>9.0f}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--docs", type=int, default=2000, help="demo documents per collection")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh apps per endpoint")
    parser.add_argument("--warmup", type=int, default=30, help="discarded warm requests")
    parser.add_argument("--warm", type=int, default=200, help="measured warm requests")
    args = parser.parse_args(argv)
    from bench.embedded_db import database

    with database() as server:
        doc = asyncio.run(measure(server.uri, docs=args.docs, cold_runs=args.cold_runs,
                                  warmup=args.warmup, warm=args.warm))  # fmt: skip
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(_table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
