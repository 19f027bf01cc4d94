"""Requirements parsing for exports: the ``requirements_parse`` knob (report 3.2, spec 6.8).

:func:`parse_requirements` turns a ``requirements.txt`` text into lower-cased package
names (blank lines, comments and pip options are skipped). :func:`master_requirements`
gives the platform's own requirements. There is no ``requirements.txt`` in this project:
the list comes from the installed distribution's ``Requires-Dist`` metadata (extras left
out), parsed with the same function.

Knob, read once from ``Settings().knob("requirements_parse")`` when this module is
imported:

``"at_import"`` (baseline, as the reference's ``MASTER_REQUIREMENTS``)
    The list is read and parsed while the module is imported.
``"lazy"`` (default)
    Nothing happens at import; the first call computes the list and caches it.

Either way the work is a metadata read plus a regex per line: microseconds to a few
milliseconds, once per process (spec 6.8 expects it to be unmeasurable). Nothing in the
export path needs the list today; it is kept for exports that merge an experiment's
requirements with the platform's.
"""

from __future__ import annotations

import functools
import re
from importlib import metadata
from typing import Any

DISTRIBUTION = "tuning-workbench"
STRATEGIES: tuple[str, ...] = ("at_import", "lazy")
# A requirement starts with its project name (PEP 508): letters, digits, ".", "_", "-".
_PKG_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def parse_requirements(text: str) -> list[str]:
    """Package names of a requirements text, lower-cased, in order, without duplicates."""
    names: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "-")):  # comments, -r/-e/--index-url options
            continue
        match = _PKG_NAME.match(line)
        if match is None:
            continue
        name = match.group(1).lower()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _requirements_text(distribution: str = DISTRIBUTION) -> str:
    """The distribution's base requirements (no extras) as requirements-file text."""
    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return ""
    return "\n".join(r for r in requires if "extra ==" not in r.replace("extra==", "extra =="))


def _compute() -> tuple[str, ...]:
    return tuple(parse_requirements(_requirements_text()))


def _strategy() -> str:
    try:
        from platform_core.settings import Settings

        chosen = Settings().knob("requirements_parse")
    except Exception:  # unreadable settings must not break an import: use the default
        return "lazy"
    return chosen if chosen in STRATEGIES else "lazy"


STRATEGY = _strategy()
_AT_IMPORT: tuple[str, ...] | None = _compute() if STRATEGY == "at_import" else None


@functools.cache
def _lazy() -> tuple[str, ...]:
    return _compute()


def master_requirements() -> list[str]:
    """The platform's own requirement names (computed at import or on first call)."""
    return list(_AT_IMPORT if _AT_IMPORT is not None else _lazy())


def __getattr__(name: str) -> Any:
    """``MASTER_REQUIREMENTS`` (the reference's name), computed on first access if lazy."""
    if name == "MASTER_REQUIREMENTS":
        return master_requirements()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
