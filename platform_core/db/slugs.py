"""Names the platform lets experiments use: slugs and collection base names.

An experiment's slug ends up in file paths, URL prefixes and collection names, so it is
checked here, once, before any of those are built (PLATFORM_SPEC 8.4). Collection base
names go through the same alphabet so that ``../x``, ``a.b``, ``$cmd``, empty names and
unicode look-alikes (``ｃlicks``, Cyrillic ``с``) never reach the driver.

Physical collection names are ``<slug>_<base>``. That scheme is ambiguous by
construction: slug ``store`` with base ``factory_x`` and slug ``store_factory`` with base
``x`` both give ``store_factory_x``. Documents stay separated anyway (every read and write
is filtered on ``experiment_id``), but whole-collection operations (drop, dump, listing)
need one owner per name. :func:`owner_of` gives that owner: the *longest* registered slug
``s`` with ``name.startswith(s + "_")``. It never decides by a bare prefix of the slug
being deleted, so deleting ``store`` leaves ``store_factory_*`` alone whenever
``store_factory`` is a registered slug (PLATFORM_SPEC 8.5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# The documented pattern. Matching uses ``fullmatch`` because ``$`` alone also matches
# just before a trailing newline ("abc\n" would pass ``SLUG_RE.match``).
SLUG_RE = re.compile(r"^[a-z0-9_]+$")
_NAME_CHARS = re.compile(r"[a-z0-9_]+")

MAX_SLUG_LENGTH = 64
# MongoDB limits "<db>.<collection>" to 255 bytes; slug + "_" + base stays well below it.
MAX_BASE_NAME_LENGTH = 120

# Names already validated (the same few slugs and collection names are checked on every
# request); bounded, and only ever holds names that passed the check.
_KNOWN_GOOD_LIMIT = 4096
_known_good: set[str] = set()


def _check(kind: str, value: object, max_length: int) -> str:
    if type(value) is not str:
        raise ValueError(f"invalid {kind} {value!r}: must be a str matching {SLUG_RE.pattern}")
    if value in _known_good and len(value) <= max_length:
        return value
    if not value:
        raise ValueError(f"invalid {kind} '': must not be empty (pattern {SLUG_RE.pattern})")
    if len(value) > max_length:
        raise ValueError(f"invalid {kind} {value!r}: longer than {max_length} characters")
    if _NAME_CHARS.fullmatch(value) is None:
        raise ValueError(
            f"invalid {kind} {value!r}: only lowercase ASCII letters, digits and '_' are "
            f"allowed (pattern {SLUG_RE.pattern})"
        )
    if len(_known_good) < _KNOWN_GOOD_LIMIT:
        _known_good.add(value)
    return value


def validate_slug(slug: object) -> str:
    """Return ``slug`` unchanged if it matches ``^[a-z0-9_]+$``; raise ``ValueError`` naming it.

    Call this before building any path, route or collection name from a slug.
    """
    return _check("slug", slug, MAX_SLUG_LENGTH)


def validate_collection_base_name(name: object) -> str:
    """Return a collection base name (the part after ``<slug>_``) if it is safe to use."""
    return _check("collection name", name, MAX_BASE_NAME_LENGTH)


def physical_collection_name(slug: str, base_name: str) -> str:
    """``<slug>_<base_name>``, both parts validated."""
    return f"{validate_slug(slug)}_{validate_collection_base_name(base_name)}"


def owner_of(physical_name: str, slugs: Iterable[str]) -> str | None:
    """The slug that owns ``physical_name`` among the registered ``slugs``, or ``None``.

    The owner is the longest slug ``s`` such that the name is ``s + "_" + base`` with a
    valid, non-empty base. Longest wins because a longer registered slug is the more
    specific claim: with ``store`` and ``store_factory`` registered, ``store_factory_x``
    belongs to ``store_factory``. The result depends only on the set of slugs, never on
    their order.
    """
    best: str | None = None
    for slug in slugs:
        validate_slug(slug)
        prefix = slug + "_"
        if not physical_name.startswith(prefix):
            continue
        base = physical_name[len(prefix) :]
        if not base or _NAME_CHARS.fullmatch(base) is None:
            continue
        if best is None or len(slug) > len(best):
            best = slug
    return best
