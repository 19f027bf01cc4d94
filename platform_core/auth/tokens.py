"""Platform session tokens: HS256 JWTs in the ``token`` cookie.

Fixes of the reference (PLATFORM_SPEC 7 and 8.1):

* ONE secret source. ``JWT_SECRET`` if set, else a random secret generated once and kept
  in ``DATA_DIR/jwt_secret`` (mode 0600) so restarts and several workers agree. There is
  no hard-coded default anywhere, so signing and verifying can never use different keys.
* ``typ`` and ``aud`` claims: a token minted for something else with the same key (an
  experiment's sub-auth session, say) is not a platform login, and vice versa.
* Only HS256 is accepted on decode (``alg=none`` and algorithm confusion are refused), and
  ``exp``/``iat`` are required.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

import jwt

from platform_core.auth.models import CurrentUser
from platform_core.settings import Settings

log = logging.getLogger(__name__)

COOKIE_NAME = "token"
ALGORITHM = "HS256"
TOKEN_TYPE = "platform-session"
AUDIENCE = "platform_core"
SECRET_FILE = "jwt_secret"
# HS256 keys shorter than the hash output weaken the MAC; RFC 7518 3.2 asks for >= 256 bits.
MIN_SECRET_BYTES = 32


class SecretError(RuntimeError):
    """The JWT secret is unusable (too short, unreadable file...)."""


def load_or_create_secret(settings: Settings) -> str:
    """The signing key: ``settings.jwt_secret``, else the one kept in ``data_dir``.

    The file is created atomically with ``O_EXCL`` and mode 0600; when several workers
    start at once, the losers of the race read the winner's secret.
    """
    if settings.jwt_secret:
        if len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise SecretError(
                f"JWT_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return settings.jwt_secret
    path = Path(settings.data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    log.info("generated a new JWT secret in %s", path)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    # A concurrent creator may not have written yet: wait briefly for the content.
    for _ in range(50):
        value = path.read_text().strip()
        if value:
            if len(value.encode()) < MIN_SECRET_BYTES:
                raise SecretError(f"the JWT secret in {path} is too short; delete the file")
            return value
        time.sleep(0.01)
    raise SecretError(f"the JWT secret file {path} is empty; delete it to generate a new one")


class TokenCodec:
    """Mints and checks platform session tokens with one key."""

    __slots__ = ("_secret", "lifetime_seconds")

    def __init__(self, secret: str, lifetime_seconds: int) -> None:
        self._secret = secret
        self.lifetime_seconds = lifetime_seconds

    def __repr__(self) -> str:  # never show the key
        return f"TokenCodec(lifetime_seconds={self.lifetime_seconds})"

    def encode(self, user: CurrentUser, *, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {
            "user_id": user.user_id,
            "email": user.email,
            "is_admin": user.is_admin,
            "iat": issued,
            "exp": issued + self.lifetime_seconds,
            "typ": TOKEN_TYPE,
            "aud": AUDIENCE,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> CurrentUser | None:
        """The user of a valid token, else ``None`` (never raises on bad input)."""
        if not isinstance(token, str) or len(token) > 4096:
            return None
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "iat", "aud", "typ"]},
            )
        except jwt.PyJWTError:
            return None
        except Exception:  # malformed input must never turn into a 500
            return None
        if claims.get("typ") != TOKEN_TYPE:
            return None
        user_id, email, admin = claims.get("user_id"), claims.get("email"), claims.get("is_admin")
        if not isinstance(user_id, str) or not isinstance(email, str) or type(admin) is not bool:
            return None
        return CurrentUser(user_id=user_id, email=email, is_admin=admin)


def codec_from_settings(settings: Settings) -> TokenCodec:
    return TokenCodec(load_or_create_secret(settings), settings.jwt_lifetime_seconds)
