"""Study discovery: every module in this package that defines ``STUDY`` (or ``STUDIES``).

Adding a study is adding a module; nothing else needs to know about it.
"""

from __future__ import annotations

import importlib
import pkgutil

from bench.study import Study


class UnknownStudy(ValueError):
    pass


def all_studies() -> dict[str, Study]:
    found: dict[str, Study] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for study in [getattr(module, "STUDY", None), *getattr(module, "STUDIES", ())]:
            if isinstance(study, Study):
                if study.name in found:
                    raise RuntimeError(f"two studies are named {study.name!r}")
                found[study.name] = study
    return found


def select(names: list[str]) -> list[Study]:
    """Studies by name in the given order; ``all`` means every study (calibration first)."""
    studies = all_studies()
    if not names:
        raise UnknownStudy(f"name at least one study or 'all'; valid: {', '.join(studies)}")
    if "all" in names:
        ordered = sorted(studies.values(), key=lambda s: (s.name != "calibration", s.name))
        return ordered
    unknown = [n for n in names if n not in studies]
    if unknown:
        raise UnknownStudy(
            f"unknown study {', '.join(map(repr, unknown))}; valid: all, {', '.join(studies)}"
        )
    return [studies[n] for n in dict.fromkeys(names)]
