"""Experiment static files with and without cache headers (report 7.2, spec 6.15).

One op is a *repeat* view of the catalog page's static assets, fetched the way a browser
does: the first view (in the arm's setup) stores each asset with its ``ETag``,
``Last-Modified`` and freshness lifetime; a later view uses a stored asset without asking
while it is fresh (``Cache-Control: max-age``), and otherwise revalidates it with
``If-None-Match`` (the server answers 304 without a body).

* ``plain`` sends no ``Cache-Control``: every view revalidates every asset (304s).
  Browsers may apply heuristic freshness (RFC 9111 4.2.2, ~10% of the time since
  ``Last-Modified``); the model here does not, and the assets were just written, so that
  heuristic would be ~0 anyway.
* ``cached`` adds ``max-age`` (3600 s): a view within that time makes no request at all.

``age_s`` is the simulated time between two views; at 7200 s every view comes after
``max-age`` and both variants revalidate. ``assets`` = 2 is the catalog page as shipped
(style.css, app.js); 12 adds ten generated assets (scripts and images, 20-30 KB).
The requests go in-process over ASGI: a real network would add one round trip per request.
Counters: requests, 304s and body bytes per repeat view (exact).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.studies._platform import start_platform
from bench.study import Arm, Params, Study

OWN_ASSETS = ("style.css", "app.js")
_MAX_AGE = re.compile(r"max-age=(\d+)")


def _extra_assets(static: Path, count: int) -> list[str]:
    """``count`` generated assets: half text scripts (~30 KB), half binary images (~20 KB)."""
    rng = random.Random(72)
    words = ["const", "function", "return", "await", "value", "render", "state", "items"]
    names = []
    for i in range(count):
        if i % 2 == 0:
            name = f"lib{i}.js"
            text = " ".join(rng.choice(words) for _ in range(4500))
            (static / name).write_text(f"/* generated */\n{text}\n")
        else:
            name = f"img{i}.png"
            (static / name).write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(20_000))
        names.append(name)
    return names


def _lifetime(headers: httpx.Headers) -> float:
    control = headers.get("cache-control", "")
    if "no-store" in control or "no-cache" in control:
        return 0.0
    match = _MAX_AGE.search(control)
    return float(match.group(1)) if match else 0.0  # no heuristic freshness (see above)


@dataclass(slots=True)
class _Stored:
    etag: str | None
    last_modified: str | None
    fresh_until: float


class Browser:
    """A browser's HTTP cache for one site: fresh entries are used without a request,
    stale ones are revalidated with a conditional GET. ``now`` is simulated time (s)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.now = 0.0
        self.cache: dict[str, _Stored] = {}
        self.requests = self.not_modified = self.body_bytes = 0

    async def get(self, url: str) -> None:
        stored = self.cache.get(url)
        if stored is not None and self.now < stored.fresh_until:
            return
        headers = {}
        if stored is not None and stored.etag:
            headers["If-None-Match"] = stored.etag
        elif stored is not None and stored.last_modified:
            headers["If-Modified-Since"] = stored.last_modified
        response = await self.http.get(url, headers=headers)
        self.requests += 1
        self.body_bytes += len(response.content)
        if response.status_code == 304 and stored is not None:
            self.not_modified += 1
            stored.fresh_until = self.now + _lifetime(response.headers)
            return
        if response.status_code != 200:
            raise AssertionError(f"GET {url}: {response.status_code}")
        self.cache[url] = _Stored(response.headers.get("etag"),
                                  response.headers.get("last-modified"),
                                  self.now + _lifetime(response.headers))  # fmt: skip


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    platform = await start_platform(ctx, static_strategy=variant)
    static = platform.root / "catalog" / "static"
    names = list(OWN_ASSETS) + _extra_assets(static, int(params["assets"]) - len(OWN_ASSETS))
    urls = [f"/experiments/catalog/static/{name}" for name in names]
    age = float(params["age_s"])

    async def view(browser: Browser) -> None:
        for url in urls:
            await browser.get(url)

    browser = Browser(platform.http)
    await view(browser)  # the first view fills the cache

    async def op() -> None:
        browser.now += age
        await view(browser)

    async def counters() -> dict[str, float]:
        fresh = Browser(platform.http)
        await view(fresh)
        first = fresh.requests, fresh.body_bytes
        fresh.requests = fresh.not_modified = fresh.body_bytes = 0
        views = 10
        for _ in range(views):
            fresh.now += age
            await view(fresh)
        return {
            "requests_per_repeat_view": fresh.requests / views,
            "not_modified_per_repeat_view": fresh.not_modified / views,
            "body_bytes_per_repeat_view": fresh.body_bytes / views,
            "first_view_requests": first[0],
            "first_view_body_bytes": first[1],
        }

    return Arm(op=op, counters=counters, close=platform.close)


STUDY = Study(
    name="static_cache",
    knob="static_cache",
    description="Repeat views of the catalog page's static assets by a browser-like cache.",
    make_arm=_make_arm,
    params={"assets": (2, 12), "age_s": (60, 7200)},
    quick_params={"assets": (12,), "age_s": (60,)},
    ops_per_block=10,
    quick_ops_per_block=10,
    metric="seconds per repeat page view",
)
