"""The standalone app added to every export ZIP (spec 2.16 and 9).

Next to the experiment's files, ``db_config.json`` and ``db_collections.json`` (which it
reuses as its seed data), the ZIP gets:

``main.py``
    rendered from ``templates/standalone_main.py.j2``: one FastAPI app for this experiment
    (seeding, ``managed_indexes``, the experiment's router and static files, ``/`` and
    ``/_debug/db``);
``standalone_runtime.py``
    a verbatim copy of :mod:`platform_core.export.standalone_runtime`, the only support
    code it needs. It imports nothing from ``platform_core`` (the platform's own
    ``db/scoped.py`` depends on the autoindex, client and index-guard modules, so copying it
    would drag half the platform along); it gives experiments the ``platform_core`` names
    they import (``experiments.deps``, ``experiments.actor_db``) with the same scoping;
``requirements.txt``
    the experiment's own requirement lines (kept verbatim, so a re-upload still installs
    them) followed by the app's base requirements it does not already list;
``Dockerfile`` / ``docker-compose.yml``
    ``python:3.11-slim`` running as a non-root user; MongoDB (Atlas Local when the manifest
    declares search/vector indexes, which plain ``mongo`` cannot build) plus the app,
    published on 127.0.0.1 only because the standalone app has no login.

These names are reserved at the root of the ZIP: an experiment file with the same name is
replaced (``requirements.txt`` is merged instead) and the README says so.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from bson import json_util
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from platform_core.db.slugs import validate_slug

TEMPLATES = Path(__file__).with_name("templates")
RUNTIME_SOURCE = Path(__file__).with_name("standalone_runtime.py")
RUNTIME_NAME = "standalone_runtime.py"
GENERATED = ("main.py", RUNTIME_NAME, "requirements.txt", "Dockerfile", "docker-compose.yml")
# What the generated app itself imports; python-multipart because experiments commonly use
# FastAPI's Form(), which the platform supports.
BASE_REQUIREMENTS = (
    "fastapi>=0.110",
    "uvicorn>=0.29",
    "pymongo>=4.13",
    "jinja2>=3.1",
    "python-multipart>=0.0.9",
)
MONGO_IMAGE = "mongo:7"
ATLAS_LOCAL_IMAGE = "mongodb/mongodb-atlas-local:8.0"
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@functools.cache
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Python, Dockerfile and YAML: values go through the filters below
    )
    env.filters["py"] = repr  # a Python literal, whatever the string holds
    return env


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    match = _REQ_NAME.match(line)
    return _canonical(match.group(1)) if match else ""


def merged_requirements(experiment_text: str) -> str:
    """The experiment's requirement lines, then every base requirement it does not list."""
    lines: list[str] = []
    names: set[str] = set()
    for raw in experiment_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        lines.append(line)
        if not line.startswith("-"):
            names.add(_requirement_name(line))
    base = [req for req in BASE_REQUIREMENTS if _requirement_name(req) not in names]
    parts = ["# The experiment's own requirements", *lines] if lines else []
    parts += ["# The standalone app (main.py, standalone_runtime.py)", *base]
    return "\n".join(parts) + "\n"


def _needs_atlas_local(config: dict[str, Any]) -> bool:
    kinds = {
        index.get("type")
        for indexes in (config.get("managed_indexes") or {}).values()
        for index in indexes or []
        if isinstance(index, dict)
    }
    return bool(kinds & {"vectorSearch", "search", "hybrid"})


def standalone_files(folder: Path, slug: str, config_json: str) -> dict[str, bytes]:
    """The generated files (ZIP name → content) for the experiment in ``folder``."""
    slug = validate_slug(slug)
    config = json_util.loads(config_json) if config_json else {}
    if not isinstance(config, dict):
        config = {}
    requirements = folder / "requirements.txt"
    own = ""
    if requirements.is_file() and not requirements.is_symlink():
        own = requirements.read_text(encoding="utf-8", errors="replace")
    context = {
        "slug": slug,
        "name": str(config.get("name") or slug),
        "package": f"experiment_{slug}",
        "default_db": f"{slug}_standalone",
        "mongo_image": ATLAS_LOCAL_IMAGE if _needs_atlas_local(config) else MONGO_IMAGE,
    }
    env = _env()
    return {
        "main.py": env.get_template("standalone_main.py.j2").render(context).encode(),
        RUNTIME_NAME: RUNTIME_SOURCE.read_bytes(),
        "requirements.txt": merged_requirements(own).encode(),
        "Dockerfile": env.get_template("Dockerfile.j2").render(context).encode(),
        "docker-compose.yml": env.get_template("docker-compose.yml.j2").render(context).encode(),
    }


def readme_section(slug: str) -> list[str]:
    """README lines describing the standalone app."""
    lines = [
        "## Run it standalone",
        "",
        "This archive is also a single-experiment app (no platform needed):",
        "",
        "* `docker compose up --build`, then open <http://127.0.0.1:8000/>; or",
        "* `pip install -r requirements.txt` and "
        "`MONGODB_URI=mongodb://localhost:27017 uvicorn main:app`.",
        "",
        "On startup `main.py` seeds MongoDB from `db_config.json` and `db_collections.json`",
        "(missing documents only), applies `managed_indexes` and serves the experiment under",
        f"`/experiments/{slug}/`; `/_debug/db` lists collections, counts and indexes.",
        "`standalone_runtime.py` scopes the data as the platform does. The standalone app has",
        "**no login** (auth policies and sub-auth are platform features): keep it private.",
        "",
        "`main.py`, `standalone_runtime.py`, `Dockerfile` and `docker-compose.yml` are",
        "generated; `requirements.txt` is the experiment's own list plus the app's.",
    ]
    return [*lines, ""]


def replaced_note(replaced: list[str]) -> str:
    """README addition when experiment files had generated names."""
    names = ", ".join(f"`{n}`" for n in replaced)
    return f"\nReplaced experiment files (their names are generated here): {names}.\n"
