"""Serving ``/experiments/<slug>/static/...``: path safety and the ``static_cache`` knob.

Knob (report 7.2, spec 6.15):

``"plain"`` (baseline) behaves like Starlette's ``StaticFiles`` as the reference mounted it:
``ETag``/``Last-Modified``, 304 on a matching conditional request, no ``Cache-Control``
(so browsers revalidate every asset on every page view: one round trip per asset).
``"cached"`` (default) adds ``Cache-Control: public, max-age=<max_age>``; a request carrying
a version query (``?v=...``) gets ``max-age=31536000, immutable``. Both answer 304.

Path safety (both variants, not a knob): the requested path is decoded by the server
before it gets here, so ``%2e%2e`` arrives as ``..``. Absolute paths, backslashes, NUL,
drive letters and any ``.``/``..`` segment are refused with 400 before the filesystem is
touched; the resolved file must then lie inside the experiment's ``static/`` folder
(symlinks pointing outside → 404). Hidden files (``.name``) are not served.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import stat
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Literal, get_args

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

StaticStrategy = Literal["plain", "cached"]
STATIC_STRATEGIES: tuple[str, ...] = get_args(StaticStrategy)
DEFAULT_MAX_AGE = 3600
IMMUTABLE_MAX_AGE = 31_536_000
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePath(ValueError):
    """A relative path that must not be used (message says why)."""


def check_relative_path(rel: str) -> list[str]:
    """Split a user-supplied relative path into safe segments or raise :class:`UnsafePath`."""
    if not rel or rel.strip() == "":
        raise UnsafePath("empty path")
    if "\x00" in rel:
        raise UnsafePath("NUL byte in path")
    if "\\" in rel:
        raise UnsafePath("backslashes are not allowed in paths")
    if rel.startswith("/") or _DRIVE.match(rel):
        raise UnsafePath("absolute paths are not allowed")
    parts = [p for p in rel.split("/") if p != ""]
    for part in parts:
        if part in (".", ".."):
            raise UnsafePath("'.' and '..' segments are not allowed")
    if not parts:
        raise UnsafePath("empty path")
    return parts


def resolve_inside(base: Path, rel: str) -> Path:
    """``base/rel`` resolved, guaranteed inside ``base`` (raises :class:`UnsafePath`)."""
    parts = check_relative_path(rel)
    root = base.resolve()
    target = root.joinpath(*parts).resolve()
    if target != root and root not in target.parents:
        raise UnsafePath("path leaves the experiment folder")
    return target


def _etag(st: os.stat_result) -> str:
    raw = f"{st.st_mtime_ns}-{st.st_size}".encode()
    return '"' + hashlib.md5(raw, usedforsecurity=False).hexdigest() + '"'


def _not_modified(request: Request, etag: str, st: os.stat_result) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return etag in tags or "*" in tags
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            return int(st.st_mtime) <= int(parsedate_to_datetime(ims).timestamp())
        except (TypeError, ValueError, OverflowError):
            return False
    return False


def serve_static(
    request: Request,
    static_root: Path,
    rel: str,
    *,
    strategy: str = "cached",
    max_age: int = DEFAULT_MAX_AGE,
) -> Response:
    """Answer one static file request (GET/HEAD) for ``static_root/rel``."""
    if request.method not in ("GET", "HEAD"):
        raise HTTPException(405, headers={"Allow": "GET, HEAD"})
    try:
        parts = check_relative_path(rel)
    except UnsafePath as exc:
        raise HTTPException(400, f"Invalid static path: {exc}") from None
    if any(p.startswith(".") for p in parts):
        raise HTTPException(404, "Not found")
    try:
        target = resolve_inside(static_root, rel)
        st = target.stat()
    except (UnsafePath, OSError):
        raise HTTPException(404, "Not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise HTTPException(404, "Not found")
    headers: dict[str, str] = {
        "ETag": _etag(st),
        "Last-Modified": formatdate(st.st_mtime, usegmt=True),
    }
    if strategy == "cached":
        if request.query_params.get("v"):
            headers["Cache-Control"] = f"public, max-age={IMMUTABLE_MAX_AGE}, immutable"
        else:
            headers["Cache-Control"] = f"public, max-age={max_age}"
    if _not_modified(request, headers["ETag"], st):
        return Response(status_code=304, headers=headers)
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, stat_result=st, media_type=media_type, headers=headers)
