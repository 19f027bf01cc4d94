"""Admin file-tree views of an experiment folder (report 3.3, spec 6.9): uncached vs TTL.

One op is one view of the admin file tree (``GET /admin/api/file-tree/catalog`` as an
admin: auth, the tree, JSON). Every tenth op an admin "saves" first: the service
invalidates the experiment's caches (config, tree, authz decisions) as save-manifest and
uploads do, so the TTL variant walks the folder again on the next view. ``files`` = 6 is
the catalog sample as shipped; 300 adds generated files in 12 sub-folders up to 300 (a
bigger project).
The walk itself runs in a worker thread in both variants.

Counters (exact, over 10 views that start right after a save): folder walks per view and
``os.scandir`` calls per view (one per directory walked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.studies._platform import start_platform
from bench.study import Arm, Params, Study
from platform_core.admin.files import SKIP_NAMES

SLUG = "catalog"
SAVE_EVERY = 10


def _grow(folder: Path, files: int) -> None:
    """Add files in sub-folders until ``folder`` holds ``files`` files in total."""
    have = sum(1 for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    missing = max(0, files - have)
    for i in range(missing):
        sub = folder / "assets" / f"part{i % 12:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i:04d}.txt").write_text(f"asset {i}\n" * 20)


def _directories(folder: Path) -> int:
    """Directories the walk opens: the folder and every sub-folder it does not skip."""
    count = 1
    for path in folder.rglob("*"):
        if path.is_dir() and not path.is_symlink() and not set(path.parts) & SKIP_NAMES:
            count += 1
    return count


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    platform = await start_platform(ctx, dir_scan_strategy=variant)
    try:
        folder = platform.root / SLUG
        _grow(folder, int(params["files"]))
        admin = await platform.admin_client()
    except BaseException:
        await platform.close()
        raise
    service = platform.service
    trees = service.file_trees
    views = {"n": 0}

    async def view() -> None:
        response = await admin.get(f"/admin/api/file-tree/{SLUG}")
        if response.status_code != 200:
            raise AssertionError(f"file tree: {response.status_code} {response.text[:200]}")

    async def op() -> None:
        views["n"] += 1
        if views["n"] % SAVE_EVERY == 0:
            service.invalidate(SLUG)
        await view()

    async def counters() -> dict[str, float]:
        directories = _directories(folder)
        service.invalidate(SLUG)
        before = trees.scans
        for _ in range(SAVE_EVERY):
            await view()
        per_view = (trees.scans - before) / SAVE_EVERY
        return {"scans_per_view": per_view, "scandir_calls_per_view": per_view * directories,
                "directories": directories}  # fmt: skip

    return Arm(op=op, counters=counters, close=platform.close)


STUDY = Study(
    name="dir_scan",
    knob="dir_scan",
    description="Admin file-tree views (a save every 10 views): folder walked per view vs TTL.",
    make_arm=_make_arm,
    params={"files": (6, 300)},
    quick_params={"files": (300,)},
    ops_per_block=20,
    quick_ops_per_block=10,
    metric="seconds per file-tree view",
)
