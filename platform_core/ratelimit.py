"""Per-client rate limits for the sensitive routes (PLATFORM_SPEC 2.19, 8.10 fixed).

In memory, per process (each uvicorn worker counts on its own, like the reference's
slowapi). Limits, by name:

=================  ==========  ==================================================
login_post         5/minute    ``POST /auth/login`` (password guessing)
login_page         20/minute   ``GET /auth/login``
register_post      3/minute    ``POST /auth/register``
register_page      20/minute   ``GET /auth/register``
export             10/minute   ``POST /admin/api/export/{slug}`` (builds a ZIP)
export_download    30/minute   ``GET /admin/api/exports/{id}/download``
admin_package      20/minute   ``GET /admin/package/{slug}`` (builds a ZIP)
=================  ==========  ==================================================

A route opts in with ``dependencies=[Depends(RateLimit("login_post"))]``. The check runs
before the handler (no bcrypt, no export build when refused) and answers 429 through the
platform's error contract: JSON ``{"detail", "status": "error"}`` on ``/api`` and
``/admin/api`` paths, the HTML error page elsewhere, both with ``Retry-After`` (seconds).

* **Algorithm:** GCRA, i.e. a token bucket of ``count`` tokens refilled at
  ``count/period``: one float per (limit, client), exact ``Retry-After``, no timestamp
  lists. Refused requests do not use up tokens.
* **Key:** the client address from the scope, which :mod:`platform_core.proxies` has already
  rewritten from ``X-Forwarded-For`` *only* for peers in ``TRUSTED_PROXIES``; a spoofed
  header from anyone else changes nothing. IPv6 clients are keyed by their /64 (one host
  usually owns the whole prefix, so per-address keys would be free to rotate).
* **Bounded memory:** a key whose bucket is full again is the same as a missing key and is
  dropped (checked in least-recently-used order on every hit); above ``max_keys`` the least
  recently used keys are evicted.
* ``RATE_LIMITS_ENABLED=false`` turns every limit off (tests that log in a lot, studies).
  The clock is injectable (``RateLimiter(clock=...)``) so tests never sleep.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request

DEFAULT_LIMITS: dict[str, str] = {
    "login_post": "5/minute",
    "login_page": "20/minute",
    "register_post": "3/minute",
    "register_page": "20/minute",
    "export": "10/minute",
    "export_download": "30/minute",
    "admin_package": "20/minute",
}
DEFAULT_MAX_KEYS = 10_000
_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE_RE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period: float  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"5/minute"``, ``"100/hour"``, ``"3/10 seconds"``."""
        match = _RATE_RE.fullmatch(text)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"invalid rate {text!r}: expected e.g. '5/minute'")
        multiple = int(match.group(2) or 1)
        return cls(int(match.group(1)), multiple * _PERIODS[match.group(3)])

    @property
    def interval(self) -> float:
        """Seconds per token."""
        return self.period / self.count


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until the next request would be allowed
    remaining: int = 0


class RateLimiter:
    """Named GCRA limits keyed by client (see module docstring)."""

    def __init__(
        self,
        limits: Mapping[str, str | Rate] | None = None,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        source = {**DEFAULT_LIMITS, **(limits or {})}  # overrides on top of the defaults
        self.limits: dict[str, Rate] = {
            name: rate if isinstance(rate, Rate) else Rate.parse(rate)
            for name, rate in source.items()
        }
        self.enabled = enabled
        self.clock = clock
        self.max_keys = max_keys
        # (limit, client) -> theoretical arrival time, least recently hit first.
        self._tat: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.refused = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._tat)

    def hit(self, name: str, client: str) -> Decision:
        """Count one request of ``client`` against limit ``name``."""
        rate = self.limits[name]  # KeyError: a typo in a route declaration
        if not self.enabled:
            return Decision(True, remaining=rate.count)
        now = self.clock()
        self._expire(now)
        key = (name, client)
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + rate.interval
        allowed_at = new_tat - rate.period
        if allowed_at - now > 1e-9:  # tolerance: float sums of intervals drift
            self.refused += 1
            return Decision(False, retry_after=allowed_at - now)
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        while len(self._tat) > self.max_keys:
            self._tat.popitem(last=False)
            self.evicted += 1
        remaining = int((now - allowed_at) / rate.interval + 1e-9)
        return Decision(True, remaining=min(remaining, rate.count - 1))

    def _expire(self, now: float) -> None:
        # A bucket that has refilled completely (tat <= now) equals a missing key.
        tats = self._tat
        while tats:
            key, tat = next(iter(tats.items()))
            if tat > now:
                break
            del tats[key]

    def reset(self) -> None:
        self._tat.clear()

    def stats(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "keys": len(self._tat),
            "refused": self.refused,
            "evicted": self.evicted,
            "limits": {n: f"{r.count}/{r.period:g}s" for n, r in self.limits.items()},
        }


def client_key(request: Request) -> str:
    """The rate-limit key of a request: its (proxy-resolved) client address."""
    client = request.client
    host = client.host if client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class RateLimit:
    """FastAPI dependency: ``dependencies=[Depends(RateLimit("login_post"))]``.

    Uses ``app.state.rate_limiter``; an app without one is not limited.
    """

    def __init__(self, name: str) -> None:
        if name not in DEFAULT_LIMITS:
            raise ValueError(f"unknown rate limit {name!r}; known: {sorted(DEFAULT_LIMITS)}")
        self.name = name

    async def __call__(self, request: Request) -> None:
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is None:
            return
        decision = limiter.hit(self.name, client_key(request))
        if not decision.allowed:
            retry = max(1, math.ceil(decision.retry_after))
            raise HTTPException(
                status_code=429,
                detail=f"Too many requests, try again in {retry} s",
                headers={"Retry-After": str(retry)},
            )

    def __repr__(self) -> str:
        return f"RateLimit({self.name!r})"


def limiter_from_settings(settings: object) -> RateLimiter:
    return RateLimiter(enabled=bool(getattr(settings, "rate_limits_enabled", True)))
