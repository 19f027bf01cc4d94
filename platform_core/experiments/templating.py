"""A Jinja2 template engine per experiment (spec 2.20).

Each experiment renders its own ``templates/`` folder; the platform's templates are
reachable too, so an experiment page can ``{% extends "base.html" %}`` and get the
platform's layout and navigation. The experiment's folder comes first, so it may override
any platform template for itself; ``platform/<name>`` always names the platform's copy.
Autoescaping is on for HTML like everywhere else in the platform.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, select_autoescape
from starlette.templating import Jinja2Templates

from platform_core.web import TEMPLATES_DIR


def experiment_templates(folder: Path) -> Jinja2Templates:
    """Template engine over ``folder/templates`` plus the platform templates."""
    loaders = []
    own = folder / "templates"
    if own.is_dir():
        loaders.append(FileSystemLoader(str(own)))
    platform = FileSystemLoader(str(TEMPLATES_DIR))
    loaders.append(PrefixLoader({"platform": platform}))
    loaders.append(platform)
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(("html", "htm", "xml"), default_for_string=True),
        auto_reload=True,
    )
    return Jinja2Templates(env=env)
