"""The results store: ``results/<run-id>/`` with tidy tables and ``meta.json``.

Layout of one run (append-only: a new run never touches another's directory)::

    results/<run-id>/
        meta.json            machine, versions, backend, delay, knobs, command line, times
        samples.parquet      raw samples: one row per measured operation
        effects.parquet      one row per (study, parameter point, variant, metric)
        counters.parquet     exact counters per (study, parameter point, variant)
        errors.json          studies that raised, with the message
        run.json             the same document ``workbench bench --json`` prints
        profiles/<study>__<variant>.html   pyinstrument profiles (async mode)

``load_run`` is the reading side that notebooks use.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

SAMPLE_COLUMNS = [
    "study", "point", "params", "block", "arm", "variant", "warmup", "op", "seconds",
]  # fmt: skip


def results_root() -> Path:
    """``WORKBENCH_RESULTS`` if set, else ``./results``."""
    return Path(os.environ.get("WORKBENCH_RESULTS") or "results")


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


class RunWriter:
    """Writes one run's directory; every ``flush`` rewrites the tables of *this* run only."""

    def __init__(self, root: Path | None = None, run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.dir = (root or results_root()) / self.run_id
        self.dir.mkdir(parents=True, exist_ok=False)  # never reuse another run's directory
        (self.dir / "profiles").mkdir()
        self.samples: list[dict[str, Any]] = []
        self.effects: list[dict[str, Any]] = []
        self.counters: list[dict[str, Any]] = []
        self.errors: list[dict[str, str]] = []

    @property
    def profiles_dir(self) -> Path:
        return self.dir / "profiles"

    def write_meta(self, meta: dict[str, Any]) -> None:
        _write_json(self.dir / "meta.json", meta)

    def write_run_doc(self, doc: dict[str, Any]) -> None:
        _write_json(self.dir / "run.json", doc)

    def flush(self) -> None:
        _write_table(self.dir / "samples.parquet", self.samples, SAMPLE_COLUMNS)
        _write_table(self.dir / "effects.parquet", self.effects, None)
        _write_table(self.dir / "counters.parquet", self.counters, None)
        _write_json(self.dir / "errors.json", self.errors)


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str, allow_nan=False))
    tmp.replace(path)


def _write_table(path: Path, rows: list[dict[str, Any]], columns: list[str] | None) -> None:
    frame = pd.DataFrame(rows, columns=columns) if columns else pd.DataFrame(rows)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class Run:
    """A finished (or interrupted) run, read back from disk."""

    run_id: str
    dir: Path
    meta: dict[str, Any]
    doc: dict[str, Any]
    samples: pd.DataFrame
    effects: pd.DataFrame
    counters: pd.DataFrame
    errors: list[dict[str, str]]


def list_runs(root: Path | None = None) -> list[Path]:
    base = root or results_root()
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / "meta.json").is_file())


def load_run(run: str | Path | None = None, root: Path | None = None) -> Run:
    """Load a run by directory, by id, or (``None``) the latest one."""
    if run is None:
        runs = list_runs(root)
        if not runs:
            raise FileNotFoundError(
                f"no runs under {root or results_root()}: run `workbench bench`"
            )
        path = runs[-1]
    else:
        path = Path(run)
        if not path.is_dir():
            path = (root or results_root()) / str(run)
    if not (path / "meta.json").is_file():
        raise FileNotFoundError(f"{path} is not a workbench run (no meta.json)")

    def table(name: str) -> pd.DataFrame:
        file = path / name
        return pd.read_parquet(file) if file.is_file() else pd.DataFrame()

    def doc(name: str, default: Any) -> Any:
        file = path / name
        return json.loads(file.read_text()) if file.is_file() else default

    return Run(
        run_id=path.name,
        dir=path,
        meta=doc("meta.json", {}),
        doc=doc("run.json", {}),
        samples=table("samples.parquet"),
        effects=table("effects.parquet"),
        counters=table("counters.parquet"),
        errors=doc("errors.json", []),
    )
