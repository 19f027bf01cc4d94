"""The app's outer layers: trusted proxy headers, HSTS, GZip; plus limiter and event hub.

:func:`install_edge` is called by ``create_app`` after the inner middlewares, so the stack
is (outermost first)::

    GZip → ProxyHeaders → HSTS (production only) → RequestContext → CrossSiteWriteGuard → ...

* **GZip** (Starlette's, pure ASGI): bodies of at least :data:`GZIP_MINIMUM_SIZE` bytes
  when the client sends ``Accept-Encoding: gzip``; level 6, zlib's default (Starlette's 9
  took ~5x the CPU of level 6 on a 340 kB JSON body here). Content types that are compressed already (ZIP/gzip archives,
  raster images, WOFF fonts, audio, video) and event streams are passed through untouched:
  the reference recompressed images (PLATFORM_SPEC 6.15). SVG, TTF/OTF, HTML, CSS, JS and
  JSON do compress and are compressed. Being outermost it also covers error pages.
* **ProxyHeaders** (:mod:`platform_core.proxies`): the client address and scheme from
  ``X-Forwarded-For``/``-Proto``, only when the direct peer is in ``TRUSTED_PROXIES``
  (not installed at all while that list is empty).
* **HSTS** (only if ``ENVIRONMENT=production``): ``Strict-Transport-Security:
  max-age=31536000; includeSubDomains`` on responses to requests whose scope scheme is
  ``https`` (a browser ignores HSTS over plain http, and sending it there would let a
  client-controlled header decide; with a trusted proxy the scheme comes from it).

State set here: ``app.state.rate_limiter`` (:class:`~platform_core.ratelimit.RateLimiter`,
``RATE_LIMITS_ENABLED``), ``app.state.events`` (:class:`~platform_core.events.EventHub`,
closed by the lifespan at shutdown so open event streams end) and
``app.state.trusted_proxies``.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core.events import EventHub
from platform_core.proxies import ProxyHeadersMiddleware, TrustedProxies
from platform_core.ratelimit import limiter_from_settings

GZIP_MINIMUM_SIZE = 1000
GZIP_LEVEL = 6
# Starlette's list (zip, gzip, common images, woff/woff2, audio/*, video/*, event streams)
# plus other formats that are compressed already.
GZIP_EXCLUDED_TYPES: tuple[str, ...] = (
    *DEFAULT_EXCLUDED_CONTENT_TYPES,
    "application/x-zip-compressed",
    "application/x-7z-compressed",
    "application/x-bzip2",
    "application/x-xz",
    "application/zstd",
    "application/vnd.rar",
    "application/x-rar-compressed",
    "application/x-compress",
    "application/font-woff",
    "image/heic",
    "image/jxl",
    "image/apng",
)
HSTS_VALUE = "max-age=31536000; includeSubDomains"


class HSTSMiddleware:
    """Adds ``Strict-Transport-Security`` to responses of https requests (pure ASGI)."""

    def __init__(self, app: ASGIApp, value: str = HSTS_VALUE) -> None:
        self.app = app
        self.value = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "strict-transport-security" not in headers:
                    headers["Strict-Transport-Security"] = self.value
            await send(message)

        await self.app(scope, receive, send_with_hsts)


def install_edge(app: Any) -> None:
    """Add the outer middlewares and create the limiter and event hub (see module doc).

    Call once in ``create_app``, after the other ``add_middleware`` calls.
    """
    settings = app.state.settings
    app.state.rate_limiter = limiter_from_settings(settings)
    app.state.events = EventHub()
    trusted = TrustedProxies(getattr(settings, "trusted_proxies", ()) or ())
    app.state.trusted_proxies = trusted
    if settings.environment == "production":
        app.add_middleware(HSTSMiddleware)
    if trusted:
        app.add_middleware(ProxyHeadersMiddleware, trusted=trusted)
    app.add_middleware(
        GZipMiddleware,
        minimum_size=GZIP_MINIMUM_SIZE,
        compresslevel=GZIP_LEVEL,
        exclude_content_types=GZIP_EXCLUDED_TYPES,
    )
