"""Knob ``dir_scan`` (report 3.3): the admin file tree walked per view or cached (TTL).

Exact counter: ``os.scandir`` calls inside the experiment folder. The first view walks every
directory once in both variants; the second view within the TTL walks nothing under
``ttl`` and everything again under ``uncached``; both answer the same tree, and a save
through the admin API invalidates, so a new file shows on the next view in both.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from platform_core.settings import Settings
from tests.knobs.conftest import admin_client, running, variants_of

URL = "/admin/api/file-tree/catalog"


class ScandirCounter:
    def __init__(self, root: Path) -> None:
        self.root = str(root.resolve())
        self.calls = 0
        self._real = os.scandir
        self._lock = threading.Lock()  # the walk runs in a worker thread

    def __call__(self, path: Any = ".") -> Any:
        if str(path).startswith(self.root):
            with self._lock:
                self.calls += 1
        return self._real(path)


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("dir_scan"))
async def test_second_view_scans_nothing_within_the_ttl(
    knob_settings: Settings, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = knob_settings.experiments_dir / "catalog"
    dirs = 1 + sum(len(d) for _, d, _ in os.walk(folder))
    async with running(knob_settings, {"dir_scan": variant}) as app:
        counter = ScandirCounter(folder)
        monkeypatch.setattr(os, "scandir", counter)
        async with admin_client(app) as admin:
            first = (await admin.get(URL)).json()
            after_first = counter.calls
            second = (await admin.get(URL)).json()
            after_second = counter.calls
            (folder / "static" / "new.css").write_text("p { margin: 0 }\n")
            manifest = (folder / "manifest.json").read_text()
            saved = await admin.post("/admin/api/save-manifest/catalog", json={"content": manifest})
            assert saved.status_code == 200
            third = (await admin.get(URL)).json()
        stats = app.state.experiment_service.file_trees.stats()
    assert first == second and first["tree"]
    assert after_first == dirs
    assert after_second - after_first == (0 if variant == "ttl" else dirs)
    static = next(e for e in third["tree"] if e["name"] == "static")
    assert "new.css" in {c["name"] for c in static["children"]}
    assert stats["scans"] == (2 if variant == "ttl" else 3)
