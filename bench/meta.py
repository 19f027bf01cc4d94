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
