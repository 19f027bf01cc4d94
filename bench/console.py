"""Shared command-line output helpers (kept apart from the parser to avoid import cycles)."""

from __future__ import annotations

import json
import sys
from typing import Any


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def print_json(doc: Any) -> None:
    """The one JSON document a ``--json`` command prints on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()


def err(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
