"""Experiment folder browsing for admins: the file tree and safe file reads (spec 2.17).

``dir_scan`` knob (report 3.3, spec 6.9): ``"uncached"`` (baseline) walks the folder on
every view (in a worker thread); ``"ttl"`` (default) keeps each tree for ``ttl_seconds``
(60) and, unlike the reference, is invalidated synchronously on upload, save and delete,
so a tree is never stale after the platform itself changed the folder. ``scans`` counts
real walks so a study can prove the saving.

:func:`read_file_safely` is the file viewer: relative paths only, no ``..``/absolute/
backslash/NUL/drive-letter paths (400), the resolved path must stay inside the folder
(symlinks escaping it → 403), size-capped, binary files get a placeholder.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

from platform_core.experiments.static import UnsafePath, check_relative_path

DirScanStrategy = Literal["uncached", "ttl"]
DIR_SCAN_STRATEGIES: tuple[str, ...] = get_args(DirScanStrategy)
SKIP_NAMES = frozenset({"__pycache__", ".DS_Store", ".git", ".idea", ".vscode"})
MAX_VIEW_BYTES = 512 * 1024
MAX_TREE_ENTRIES = 5000


class FileAccessError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def scan_tree(folder: Path) -> list[dict[str, Any]]:
    """Recursive tree ``[{name, type: dir|file|symlink, path, size?, children?}]``.

    Symlinks are listed but never followed (a link could point anywhere).
    """
    count = 0

    def walk(directory: Path, rel: str) -> list[dict[str, Any]]:
        nonlocal count
        out: list[dict[str, Any]] = []
        try:
            entries = sorted(os.scandir(directory), key=lambda e: (not e.is_dir(), e.name))
        except OSError as exc:
            return [{"name": directory.name, "type": "error", "path": rel, "error": str(exc)}]
        for entry in entries:
            if entry.name in SKIP_NAMES:
                continue
            count += 1
            if count > MAX_TREE_ENTRIES:
                out.append({"name": "…", "type": "truncated", "path": rel})
                break
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                out.append({"name": entry.name, "type": "symlink", "path": path})
            elif entry.is_dir(follow_symlinks=False):
                out.append({"name": entry.name, "type": "dir", "path": path,
                            "children": walk(Path(entry.path), path)})  # fmt: skip
            else:
                size = entry.stat(follow_symlinks=False).st_size
                out.append({"name": entry.name, "type": "file", "path": path, "size": size})
        return out

    return walk(folder, "")


class FileTreeCache:
    """The ``dir_scan`` knob: per-folder trees with a TTL and explicit invalidation."""

    def __init__(
        self,
        strategy: str = "ttl",
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if strategy not in DIR_SCAN_STRATEGIES:
            raise ValueError(f"unknown dir scan strategy {strategy!r}: {DIR_SCAN_STRATEGIES}")
        self.strategy = strategy
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._trees: dict[str, tuple[list[dict[str, Any]], float]] = {}
        self.scans = 0
        self.hits = 0

    async def tree(self, key: str, folder: Path) -> list[dict[str, Any]]:
        if self.strategy == "ttl":
            cached = self._trees.get(key)
            if cached is not None and self._clock() - cached[1] <= self.ttl_seconds:
                self.hits += 1
                return cached[0]
        self.scans += 1
        tree = await asyncio.to_thread(scan_tree, folder)
        if self.strategy == "ttl":
            self._trees[key] = (tree, self._clock())
        return tree

    def invalidate(self, key: str | None = None) -> None:
        if key is None:
            self._trees.clear()
        else:
            self._trees.pop(key, None)

    def stats(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "scans": self.scans, "hits": self.hits,
                "cached": len(self._trees)}  # fmt: skip


def secure_path(base: Path, rel: str) -> Path:
    """``base/rel`` if it is safely inside ``base``; raises :class:`FileAccessError`."""
    try:
        parts = check_relative_path(rel)
    except UnsafePath as exc:
        raise FileAccessError(400, f"Invalid path: {exc}") from None
    root = base.resolve()
    candidate = root.joinpath(*parts)
    target = candidate.resolve()
    if target != root and root not in target.parents:
        raise FileAccessError(403, "Path leaves the experiment folder")
    return target


def _read(target: Path) -> dict[str, Any]:
    if not target.exists():
        raise FileAccessError(404, "File not found")
    if not target.is_file():
        raise FileAccessError(400, "Not a file")
    size = target.stat().st_size
    if size > MAX_VIEW_BYTES:
        return {"binary": False, "too_large": True, "size": size,
                "content": f"[file too large to display: {size} bytes]"}  # fmt: skip
    data = target.read_bytes()
    if b"\x00" in data[:8192]:
        return {"binary": True, "size": size, "content": f"[binary file: {size} bytes]"}
    try:
        return {"binary": False, "size": size, "content": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"binary": True, "size": size, "content": f"[binary file: {size} bytes]"}


async def read_file_safely(base: Path, rel: str) -> dict[str, Any]:
    target = secure_path(base, rel)
    result = await asyncio.to_thread(_read, target)
    result["path"] = "/".join(check_relative_path(rel))
    return result
