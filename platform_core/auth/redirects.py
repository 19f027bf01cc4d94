"""Where a user may be sent after login: same-site absolute paths only.

The reference accepted any value starting with ``/`` (PLATFORM_SPEC 8.2), so
``//evil.example`` (a scheme-relative URL) escaped. Browsers are lenient in more ways
than that: they treat ``\\`` like ``/``, strip tabs and newlines inside URLs, and some
intermediaries decode ``%2F``/``%5C`` once more. The guard therefore rejects, in the raw
value *and* in every percent-decoded form of it:

* anything not starting with exactly one ``/`` (``//x``, ``/\\x``, ``\\\\x``, ``x``...);
* backslashes anywhere, ASCII control characters and whitespace;
* any scheme or authority (``javascript:``, ``http://``...), which the first rule already
  excludes for a leading ``/`` but is checked again with ``urlsplit`` for defence in depth.

Non-ASCII characters are refused too: a legitimate platform path is ASCII (slugs are
``[a-z0-9_]``), while look-alike slashes (``／``, ``∕``) are a known bypass source.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from starlette.requests import Request

LOGIN_PATH = "/auth/login"
_MAX_LENGTH = 2048
_MAX_DECODE_ROUNDS = 4


def _bad_chars(value: str) -> bool:
    return any(ch == "\\" or ord(ch) < 33 or ord(ch) == 127 or ord(ch) > 126 for ch in value)


def _safe_form(value: str) -> bool:
    if not value.startswith("/") or value.startswith("//"):
        return False
    if _bad_chars(value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def is_safe_next_url(value: object) -> bool:
    if not isinstance(value, str) or not value or len(value) > _MAX_LENGTH:
        return False
    current = value
    for _ in range(_MAX_DECODE_ROUNDS):
        if not _safe_form(current):
            return False
        decoded = unquote(current)
        if decoded == current:
            return True
        current = decoded
    return False  # still changing after several rounds: refuse rather than guess


def safe_next_url(value: object, default: str = "/") -> str:
    """``value`` if it is a same-site absolute path, else ``default``."""
    return value if is_safe_next_url(value) else default  # type: ignore[return-value]


def login_redirect_url(request: Request) -> str:
    """``/auth/login?next=<this request's path and query>`` (only if that path is safe)."""
    target = request.url.path
    if request.url.query:
        target = f"{target}?{request.url.query}"
    if not is_safe_next_url(target) or target.startswith(LOGIN_PATH):
        return LOGIN_PATH
    return f"{LOGIN_PATH}?next={quote(target, safe='')}"
