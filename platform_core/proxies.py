"""Forwarded headers, trusted only from configured proxies (fixes PLATFORM_SPEC 8.10).

The reference believed ``X-Forwarded-*`` from any client, so anyone could spoof the
scheme (and with it HSTS and generated URLs) or, had its rate limiter read the header,
their IP address. Here the headers count only when the **direct peer** (``scope["client"]``)
is in ``TRUSTED_PROXIES`` (addresses or CIDR networks; empty by default = trust nobody).

:class:`ProxyHeadersMiddleware` (pure ASGI) then rewrites the request scope once, so every
later reader (``request.client``, ``request.url.scheme``, the rate limiter, HSTS) sees the
real values:

* client: ``X-Forwarded-For`` is walked from the right, skipping trusted proxies; the first
  untrusted address is the client. Entries to its left were written by the client itself
  and are ignored. If every hop is trusted, the leftmost one is taken.
* scheme: the **last** ``X-Forwarded-Proto`` value (the one our own proxy appended or set),
  if it is ``http`` or ``https``.

``Forwarded`` (RFC 7239) and ``X-Forwarded-Host`` are not read; the ``Host`` header is used
as sent (the cross-site guard relies on it, see :mod:`platform_core.auth.csrf`).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_trusted_proxies(value: Any) -> list[str]:
    """Settings input → canonical network strings; raises ``ValueError`` on a bad entry.

    Accepts a list, a JSON list (``'["10.0.0.0/8"]'``, what ``settings_to_environment``
    writes) or a comma/space separated string (``"10.0.0.1, 192.168.0.0/16"``).
    """
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            value = [part for part in text.replace(",", " ").split() if part]
    if not isinstance(value, Iterable):
        raise ValueError("TRUSTED_PROXIES must be a list of IP addresses or networks")
    networks: list[str] = []
    for entry in value:
        try:
            network = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            raise ValueError(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
        networks.append(str(network))
    return networks


def parse_ip(text: str) -> IPAddress | None:
    """An address from a header or ``scope["client"]`` (``[v6]:port`` and ``v4:port`` too)."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:  # 203.0.113.7:51000
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    """Membership test for ``TRUSTED_PROXIES`` (cached per address string)."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in parse_trusted_proxies(list(networks))
        )
        self.contains = lru_cache(maxsize=1024)(self._contains)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def _contains(self, host: str) -> bool:
        ip = parse_ip(host)
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)

    def client_from(self, peer: str, forwarded_for: str) -> str:
        """The client address for a request from ``peer`` carrying ``forwarded_for``."""
        client = peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if not self.contains(client):
                break  # ``client`` is untrusted: it is the answer
            ip = parse_ip(hop)
            if ip is None:
                break  # garbage written by our own proxy: keep the last trusted hop
            client = str(ip)
        return client


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]


class ProxyHeadersMiddleware:
    """Applies ``X-Forwarded-For``/``-Proto`` from trusted peers to the scope (see module doc)."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if (
            scope["type"] not in ("http", "websocket")
            or not self.trusted
            or not peer
            or not self.trusted.contains(str(peer[0]))
        ):
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        forwarded_for = ",".join(_header_values(scope, b"x-forwarded-for"))
        if forwarded_for:
            client = self.trusted.client_from(str(peer[0]), forwarded_for)
            if client != peer[0]:
                scope["client"] = (client, 0)
        protos = ",".join(_header_values(scope, b"x-forwarded-proto")).split(",")
        proto = protos[-1].strip().lower()
        if proto in ("http", "https"):
            if scope["type"] == "websocket":
                proto = "wss" if proto == "https" else "ws"
            scope["scheme"] = proto
        await self.app(scope, receive, send)
