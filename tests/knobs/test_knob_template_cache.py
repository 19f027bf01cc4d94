"""Knob ``template_cache`` (report 2.3): compiled templates cached in ``DATA_DIR`` or not.

Exact proof: after rendering pages, ``DATA_DIR/jinja_cache`` holds one bytecode file per
template used with ``fs_bytecode_cache`` and does not exist with ``none``; the HTML is the
same in both variants, and a second process (a new app on the same ``DATA_DIR``) loads the
cached bytecode instead of compiling again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import client_for

PAGES = ("/auth/login", "/auth/register", "/")


async def _render(settings: Settings, variant: str, data_dir: Path) -> dict[str, str]:
    async with running(settings, {"template_cache": variant}, data_dir=data_dir) as app:
        async with client_for(app) as http:
            pages = {}
            for url in PAGES:
                r = await http.get(url)
                assert r.status_code == 200, (url, r.status_code)
                pages[url] = r.text
        return pages


@pytest.mark.asyncio
async def test_bytecode_cache_files_and_same_html(knob_settings: Settings, tmp_path: Path) -> None:
    rendered = {}
    for variant in variants_of("template_cache"):
        data_dir = tmp_path / f"data-{variant}"
        rendered[variant] = await _render(knob_settings, variant, data_dir)
        cache_dir = data_dir / "jinja_cache"
        if variant == "fs_bytecode_cache":
            files = sorted(p.name for p in cache_dir.iterdir())
            assert files and all(name.endswith(".cache") for name in files)
            stamps = {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()}
            # a fresh app on the same DATA_DIR reuses the bytecode: nothing rewritten
            again = await _render(knob_settings, variant, data_dir)
            assert again == rendered[variant]
            assert {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()} == stamps
        else:
            assert not cache_dir.exists()
    first, *others = rendered.values()
    assert all(other == first for other in others)
