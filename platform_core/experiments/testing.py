"""Helpers for tests and studies of the experiments subsystem (no pytest dependency).

* :func:`started_app`: an app with an :class:`ExperimentService` built with explicit
  strategies, lifespan entered, database dropped on exit;
* :func:`copy_samples`: a writable copy of the sample experiments (uploads and deletes
  must never touch the package's own folder);
* :func:`make_zip` / :func:`experiment_files`: ZIP archives for upload tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import zipfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from platform_core.experiments.discovery import PACKAGE_SAMPLES
from platform_core.settings import Settings


def copy_samples(dest: Path, slugs: tuple[str, ...] | None = None) -> Path:
    """Copy the sample experiments (or some of them) into ``dest``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in sorted(PACKAGE_SAMPLES.iterdir()):
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        if slugs is not None and folder.name not in slugs:
            continue
        shutil.copytree(folder, dest / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@contextlib.asynccontextmanager
async def started_app(settings: Settings, **service_options: Any) -> AsyncIterator[FastAPI]:
    """``create_app(settings)`` with ``ExperimentService.install(app, **service_options)``."""
    from platform_core.app import create_app
    from platform_core.experiments.service import ExperimentService

    app = create_app(settings)
    ExperimentService.install(app, **service_options)
    async with app.router.lifespan_context(app):
        try:
            yield app
        finally:
            await app.state.client.drop_database(settings.mongodb_db)


def make_zip(files: Mapping[str, bytes | str], *, symlinks: Mapping[str, str] | None = None,
             compression: int = zipfile.ZIP_DEFLATED) -> bytes:  # fmt: skip
    """A ZIP with ``files`` (name → content) and optional symlink members (name → target)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def experiment_files(slug: str, *, prefix: str = "", manifest: Mapping[str, Any] | None = None,
                     body: str = "ok") -> dict[str, str]:  # fmt: skip
    """A minimal uploadable experiment whose ``GET /`` answers ``{"body": body}``."""
    manifest = dict(manifest or {"slug": slug, "name": f"Experiment {slug}", "status": "active"})
    return {
        f"{prefix}manifest.json": json.dumps(manifest),
        f"{prefix}__init__.py": (
            "from fastapi import APIRouter\n\nbp = APIRouter()\n\n\n"
            f"@bp.get('/')\nasync def index():\n    return {{'body': {body!r}}}\n"
        ),
        f"{prefix}actor.py": "class ExperimentActor:\n    def __init__(self, **kwargs):\n        pass\n",
        f"{prefix}templates/index.html": '<link href="static/style.css">',
        f"{prefix}static/style.css": "body { color: black; }\n",
    }
