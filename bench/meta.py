"""What a run records about where its numbers came from (``meta.json``)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

PACKAGES = (
    "tuning-workbench", "pymongo", "motor", "fastapi", "starlette", "uvicorn", "pydantic",
    "numpy", "scipy", "pandas", "pyarrow", "pyinstrument", "secantusdb", "locust", "casbin",
)  # fmt: skip

_REPO = Path(__file__).resolve().parent.parent


def git_state(repo: Path = _REPO) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=5, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg": list(os.getloadavg()),
    }


def base_meta(command_line: list[str] | None = None) -> dict[str, Any]:
    return {
        "git": git_state(),
        "packages": package_versions(),
        "machine": machine(),
        "command_line": command_line if command_line is not None else sys.argv,
    }


class ProcessCPU:
    """CPU seconds used by the processes of a run: this harness, the DB, the proxy.

    Recorded per study so a reader can see which process was busy, and whether one was
    saturated (a process near 1.0 CPU-seconds per wall second is the bottleneck: its
    numbers measure its own limit, not the knob). A server given by ``MONGODB_URI`` has no
    local pid and is reported as None.
    """

    def __init__(self, **pids: int | None) -> None:
        self._procs: dict[str, psutil.Process | None] = {"harness": psutil.Process()}
        for name, pid in pids.items():
            try:
                self._procs[name] = psutil.Process(pid) if pid else None
            except psutil.Error:
                self._procs[name] = None

    def snapshot(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, proc in self._procs.items():
            try:
                times = proc.cpu_times() if proc is not None else None
            except psutil.Error:
                times = None
            out[name] = (times.user + times.system) if times is not None else None
        return out

    def used_since(self, before: dict[str, float | None], wall_s: float) -> dict[str, Any]:
        after = self.snapshot()
        used: dict[str, Any] = {"wall_s": round(wall_s, 3)}
        for name, start in before.items():
            end = after.get(name)
            if start is None or end is None:
                used[f"{name}_cpu_s"] = None
                continue
            used[f"{name}_cpu_s"] = round(end - start, 3)
            used[f"{name}_cpu_per_wall_s"] = round((end - start) / wall_s, 3) if wall_s else None
        used["saturated"] = [
            name for name in before
            if (used.get(f"{name}_cpu_per_wall_s") or 0) >= 0.9
        ]  # fmt: skip
        return used
