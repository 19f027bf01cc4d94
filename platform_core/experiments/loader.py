"""Import an experiment's code from its folder, fresh on every (re)load.

Why not ``importlib.import_module("experiments.<slug>")`` + ``importlib.reload`` like the
reference: ``reload`` re-executes only the package's ``__init__`` (submodules such as
``actor.py`` keep their old code), needs the experiments folder on ``sys.path``, and the
``.pyc`` check is by mtime in whole seconds, so an upload replacing a file within the same
second with the same size can run stale bytecode.

Here each experiment is a package ``_pc_experiments.<slug>`` loaded by path. On reload
every ``sys.modules`` entry of that package (and its submodules) is dropped first, and a
meta-path finder serves the namespace with a loader that compiles from source and never
reads or writes ``__pycache__`` (so uploads take effect at once and experiment folders stay
clean for the file viewer and exports). Relative imports inside an experiment work.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Any

from platform_core.db.slugs import validate_slug

NAMESPACE = "_pc_experiments"
_lock = threading.Lock()


class ExperimentImportError(RuntimeError):
    """The experiment's code could not be imported (message names slug and cause)."""


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source every time: no bytecode cache read or written."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        source = self.get_data(path)
        return compile(source, path, "exec", dont_inherit=True)

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        return None


class _ExperimentFinder(importlib.abc.MetaPathFinder):
    """Finds ``_pc_experiments.<slug>[.<sub>...]`` modules inside the parent's ``__path__``."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if not fullname.startswith(NAMESPACE + ".") or fullname.count(".") < 2:
            return None
        parent_name, _, leaf = fullname.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is None or not hasattr(parent, "__path__"):
            return None
        for base in parent.__path__:
            package_init = Path(base, leaf, "__init__.py")
            module_file = Path(base, f"{leaf}.py")
            if package_init.is_file():
                return importlib.util.spec_from_file_location(
                    fullname,
                    package_init,
                    loader=_SourceOnlyLoader(fullname, str(package_init)),
                    submodule_search_locations=[str(package_init.parent)],
                )
            if module_file.is_file():
                return importlib.util.spec_from_file_location(
                    fullname, module_file, loader=_SourceOnlyLoader(fullname, str(module_file))
                )
        return None


_FINDER = _ExperimentFinder()


def _ensure_namespace() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    if NAMESPACE not in sys.modules:
        ns = types.ModuleType(NAMESPACE, "Private namespace of loaded experiment packages.")
        ns.__path__ = []  # a package with no search path: children are loaded by path only
        sys.modules[NAMESPACE] = ns


def module_name(slug: str) -> str:
    return f"{NAMESPACE}.{validate_slug(slug)}"


def unload(slug: str) -> int:
    """Drop the experiment's package and submodules from ``sys.modules``; returns the count."""
    name = module_name(slug)
    with _lock:
        stale = [m for m in sys.modules if m == name or m.startswith(name + ".")]
        for mod in stale:
            del sys.modules[mod]
    return len(stale)


def load_package(slug: str, folder: Path) -> types.ModuleType:
    """Import ``folder/__init__.py`` fresh as ``_pc_experiments.<slug>``."""
    name = module_name(slug)
    init = folder / "__init__.py"
    if not init.is_file():
        raise ExperimentImportError(f"experiment {slug!r}: {init.name} not found in its folder")
    _ensure_namespace()
    unload(slug)
    spec = importlib.util.spec_from_file_location(
        name,
        init,
        loader=_SourceOnlyLoader(name, str(init)),
        submodule_search_locations=[str(folder)],
    )
    if spec is None or spec.loader is None:  # pragma: no cover - defensive
        raise ExperimentImportError(f"experiment {slug!r}: cannot build an import spec")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        unload(slug)
        raise ExperimentImportError(
            f"experiment {slug!r}: importing its code failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def load_submodule(slug: str, submodule: str) -> types.ModuleType | None:
    """Import ``<slug>.<submodule>`` (e.g. ``actor``) if the file exists, else ``None``.

    The package must have been loaded by :func:`load_package` first.
    """
    name = f"{module_name(slug)}.{submodule}"
    package = sys.modules.get(module_name(slug))
    if package is None:
        raise ExperimentImportError(f"experiment {slug!r} is not loaded")
    folder = Path(package.__path__[0])
    if not (folder / f"{submodule}.py").is_file() and not (folder / submodule).is_dir():
        return None
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise ExperimentImportError(
            f"experiment {slug!r}: importing {submodule}.py failed: {type(exc).__name__}: {exc}"
        ) from exc
