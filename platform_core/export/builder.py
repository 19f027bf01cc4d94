"""Building an experiment's export ZIP: the ``export_build`` knob (report 3.1, spec 6.7).

The ZIP holds the experiment's files at its root (so it can be uploaded again as is),
with ``static/...`` references in HTML rewritten to ``/experiments/<slug>/static/...``,
plus ``db_config.json`` (the config), ``db_collections.json`` (the experiment's own
documents, see :mod:`platform_core.export.collections`), a ``README.md`` and the generated
standalone app (``main.py``, ``standalone_runtime.py``, ``requirements.txt``,
``Dockerfile``, ``docker-compose.yml``; see :mod:`platform_core.export.standalone`).

``"on_loop"`` (baseline, as the reference): built synchronously in memory (``BytesIO``)
inside the async handler, so walking, reading, rewriting, DEFLATE and ``json.dumps`` stall
every other request for their whole CPU time, and the peak memory is ~2-3x the ZIP.
``"thread"`` (default): the same builder runs in a worker thread and streams into a
temporary file next to its destination; the checksum is computed while writing and the
file is renamed into place when complete (readers never see a half-written ZIP).

Symlinks and editor/VCS folders inside the experiment folder are never exported.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, get_args

from platform_core.export.standalone import readme_section, replaced_note, standalone_files

ExportBuild = Literal["on_loop", "thread"]
EXPORT_BUILDS: tuple[str, ...] = get_args(ExportBuild)
SKIP_NAMES = frozenset({"__pycache__", ".DS_Store", ".git", ".idea", ".vscode"})
# href="static/x", src='./static/x', url(static/x) -> /experiments/<slug>/static/x
_STATIC_REF = re.compile(r"""(?P<lead>(?:href|src)\s*=\s*["']|url\(\s*["']?)(?:\./)?static/""")


@dataclass(slots=True)
class BuiltZip:
    path: Path | None
    data: bytes | None
    size: int
    sha256: str
    files: int


def rewrite_static_refs(html: str, slug: str) -> str:
    return _STATIC_REF.sub(lambda m: f"{m.group('lead')}/experiments/{slug}/static/", html)


def _experiment_files(folder: Path) -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    for current, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES and not d.startswith("."))
        for name in sorted(names):
            if name in SKIP_NAMES or name.startswith("."):
                continue
            path = Path(current, name)
            if path.is_symlink() or not path.is_file():
                continue
            files.append((path, path.relative_to(folder).as_posix()))
    return files


def readme_text(slug: str, config: dict[str, Any], collections: dict[str, int]) -> str:
    lines = [
        f"# {config.get('name') or slug}",
        "",
        f"Export of the experiment `{slug}` from platform_core.",
        "",
        "* Experiment files are at the root of this archive (upload it again as is).",
        "* `db_config.json`: the experiment's configuration document.",
        "* `db_collections.json`: the experiment's own documents (`experiment_id` = slug),",
        "  per collection, as MongoDB Extended JSON.",
        "",
        "| collection | documents |",
        "|---|---|",
        *[f"| `{name}` | {count} |" for name, count in sorted(collections.items())],
        "",
        *readme_section(slug),
    ]
    return "\n".join(lines)


def _write(
    out: IO[bytes], folder: Path, slug: str, config_json: str, collections_json: str, readme: str
) -> int:
    count = 0
    # The standalone app (spec 2.16/9): generated names replace same-named experiment files.
    generated = standalone_files(folder, slug, config_json)
    replaced: list[str] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, arcname in _experiment_files(folder):
            if arcname in generated:
                replaced.append(arcname)
                continue
            data = path.read_bytes()
            if arcname.endswith((".html", ".htm")):
                try:
                    data = rewrite_static_refs(data.decode("utf-8"), slug).encode("utf-8")
                except UnicodeDecodeError:
                    pass
            zf.writestr(arcname, data)
            count += 1
        zf.writestr("db_config.json", config_json)
        zf.writestr("db_collections.json", collections_json)
        zf.writestr("README.md", readme + (replaced_note(replaced) if replaced else ""))
        for arcname, data in generated.items():
            zf.writestr(arcname, data)
    return count + 3 + len(generated)


class _HashingWriter(io.RawIOBase):
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = bytes(data)
        self.sha.update(view)
        self.size += len(view)
        return self._raw.write(view)

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._raw.flush()


def build_in_memory(
    folder: Path, slug: str, config_json: str, collections_json: str, readme: str
) -> BuiltZip:
    """Baseline: the whole ZIP in a ``BytesIO`` (call sites run it on the event loop)."""
    buffer = io.BytesIO()
    files = _write(buffer, folder, slug, config_json, collections_json, readme)
    data = buffer.getvalue()
    return BuiltZip(None, data, len(data), hashlib.sha256(data).hexdigest(), files)


def build_to_file(
    folder: Path, slug: str, config_json: str, collections_json: str, readme: str, target: Path
) -> BuiltZip:
    """Optimised: stream into ``target`` (via a temp name + rename); run it in a thread."""
    tmp = target.with_name(f".{target.name}.part")
    try:
        with open(tmp, "wb") as raw:
            writer = _HashingWriter(raw)
            files = _write(writer, folder, slug, config_json, collections_json, readme)  # type: ignore[arg-type]
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BuiltZip(target, None, writer.size, writer.sha.hexdigest(), files)
