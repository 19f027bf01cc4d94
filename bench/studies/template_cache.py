"""Cold start of the platform's templates (report 2.3, spec 6.6): none vs a bytecode cache.

One op is the first render in a FRESH process: a child forked from a parent that has
imported the platform's web module (as a pre-fork server starts its workers) builds the
template engine exactly as the app does (``build_templates(settings, variant)``) and
renders every platform page template once (the admin pages are the largest). No template
was loaded before the fork, so Jinja's in-memory cache is empty in each child. For
``fs_bytecode_cache`` the cache directory was filled by an earlier process (the arm's
setup), as after a restart or for a second worker. One parent serves every arm. The
timed sample is fork + engine + first renders; the renders alone are measured in the
child (counter ``first_render_ms``).

Counters also give one whole cold start per variant (a new interpreter: start, imports,
renders, timed from outside), to show what share of a restart the cache saves, and the
number of cache files present. Within a running process both variants are equal.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.studies._platform import python_child, shared_fork_server
from bench.study import Arm, Params, Study

CODE = """
import json, sys, time
from platform_core.settings import Settings
from platform_core.web import TEMPLATES_DIR, build_templates
ITEM = {"slug": "catalog", "name": "Catalog", "status": "active", "owner_email": "dev@example.com",
        "description": "Products", "url": "/experiments/catalog/", "registered": True,
        "error": None, "email": "user@example.com", "roles": ["user"], "is_admin": False,
        "created_at": "2026-01-01T00:00:00", "protected": False}
CONTEXT = {
    "user": {"email": "admin@example.com"}, "is_admin": True, "can_manage": True,
    "found": [ITEM] * 5, "orphaned": [ITEM], "owners": ["dev@example.com"], "filter_owner": "",
    "filter_status": "", "strategies": {"routes": "replace"}, "slug": "catalog",
    "config": ITEM, "confirmation": "delete catalog", "error": None, "manifest_text": "{}",
    "registered": True, "users": [ITEM] * 5, "assignable_roles": ["user", "developer", "admin"],
    "message": "Not found", "request_id": "r1", "status_code": 404, "title": "Not found",
    "experiments": [ITEM] * 3, "email": "", "next": "/", "registration_enabled": True,
    "min_password": 8,
}
NAMES = sorted(p.relative_to(TEMPLATES_DIR).as_posix() for p in TEMPLATES_DIR.rglob("*.html")
               if p.name != "base.html")


def run(args):
    settings = Settings(data_dir=args["data_dir"])
    started = time.perf_counter()
    templates = build_templates(settings, args["variant"])
    chars = sum(len(templates.env.get_template(n).render(CONTEXT)) for n in NAMES)
    return {"render_ms": (time.perf_counter() - started) * 1e3, "templates": len(NAMES),
            "chars": chars}
"""
WHOLE = CODE + "\nprint(json.dumps(run({'data_dir': sys.argv[1], 'variant': sys.argv[2]})))\n"


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    data_dir = Path(tempfile.mkdtemp(prefix="templates-", dir=ctx.scratch))
    cache_dir = data_dir / "jinja_cache"
    server, release = await shared_fork_server(ctx, CODE)
    renders: list[float] = []

    async def op() -> None:
        answer = await server.call(data_dir=str(data_dir), variant=variant)
        renders.append(answer["render_ms"])

    try:
        await op()  # the earlier process: fills the bytecode cache (fs_bytecode_cache)
    except BaseException:
        await release()
        raise
    renders.clear()

    async def counters() -> dict[str, float]:
        started = time.perf_counter()
        whole = await python_child(WHOLE, str(data_dir), variant, scratch=ctx.scratch)
        return {
            "first_render_ms": float(np.median(renders)),
            "first_render_p95_ms": float(np.percentile(renders, 95)),
            "cold_process_ms": (time.perf_counter() - started) * 1e3,
            "cold_process_render_ms": whole["render_ms"],
            "templates_rendered": whole["templates"],
            "cache_files": len(list(cache_dir.glob("*"))) if cache_dir.is_dir() else 0,
        }

    async def close() -> None:
        await release()
        shutil.rmtree(data_dir, ignore_errors=True)

    return Arm(op=op, counters=counters, close=close)


STUDY = Study(
    name="template_cache",
    knob="template_cache",
    description="First render of every platform page template in a fresh (forked) process.",
    make_arm=_make_arm,
    ops_per_block=5,
    quick_ops_per_block=2,
    metric="seconds per first render of all templates (fresh process)",
)
