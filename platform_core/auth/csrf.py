"""Refuse cross-site state-changing requests (defence in depth on top of SameSite=Lax).

The session cookie is ``SameSite=Lax``, so browsers do not attach it to cross-site POSTs;
that already stops classic CSRF against logged-in routes. It does not stop *login CSRF*
(a foreign page posting the attacker's credentials to ``/auth/login``), nor requests from
a sibling subdomain (same *site*). So for every unsafe method (POST, PUT, PATCH, DELETE)
this middleware answers 403 when the browser says the request is foreign:

* ``Sec-Fetch-Site: cross-site``, or
* an ``Origin`` header whose host differs from the ``Host`` header (``Origin: null``, sent
  by sandboxed frames and some redirects, counts as foreign).

Requests without these headers (curl, httpx, locust, old browsers) pass: they carry no
ambient browser credentials an attacker could borrow. Forwarded headers are not trusted
(PLATFORM_SPEC 8.10), so behind a proxy that rewrites ``Host`` the proxy must keep it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_host(origin: str) -> str | None:
    try:
        parts = urlsplit(origin)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return host
    return f"{host}:{port}"


def _host_header(host: str) -> str:
    host = host.strip().lower()
    for suffix in (":80", ":443"):
        if host.endswith(suffix):
            return host[: -len(suffix)]
    return host


def is_cross_site(method: str, headers: Headers) -> bool:
    if method.upper() in SAFE_METHODS:
        return False
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    origin_host = _origin_host(origin)
    return origin_host is None or origin_host != _host_header(headers.get("host", ""))


class CrossSiteWriteGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_cross_site(scope["method"], Headers(scope=scope)):
            from platform_core.errors import error_response

            response = error_response(Request(scope), 403, "Cross-site request refused")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
