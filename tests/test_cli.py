"""The ``workbench`` command line: JSON contracts and clear errors (run as subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workbench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_studies_json_lists_every_study_with_its_knob() -> None:
    done = workbench("studies", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    names = {r["name"] for r in rows}
    assert {"calibration", "role_checks", "config_cache", "driver", "pool_size"} <= names
    for row in rows:
        assert {"name", "section", "knob", "variants", "baseline", "default", "metrics"} <= set(row)
        assert row["baseline"] in row["variants"] and row["default"] in row["variants"]


def test_unknown_study_is_a_one_line_error_with_valid_names() -> None:
    done = workbench("bench", "no_such_study", "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "unknown study 'no_such_study'; valid: all, " in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_knob_on_serve_is_a_clear_error() -> None:
    done = workbench("serve", "--set", "driver=warp", env={"MONGODB_URI": "mongodb://127.0.0.1:9"})
    assert done.returncode == 2
    assert "no variant 'warp'" in done.stderr and "Traceback" not in done.stderr


def test_bench_json_document_shape(tmp_path: Path, mongodb_uri: str) -> None:
    done = workbench(
        "bench", "calibration", "--quick", "--json", "--no-profile", "--budget", "4",
        env={"WORKBENCH_RESULTS": str(tmp_path), "MONGODB_URI": mongodb_uri},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)  # stdout is exactly one JSON document
    assert {"run_id", "results_dir", "backend", "rtt_ms", "studies"} <= set(doc)
    assert Path(doc["results_dir"]).parent == tmp_path
    for entry in doc["studies"]:
        assert {
            "study",
            "knob",
            "baseline",
            "variant",
            "params",
            "counters",
            "effect",
            "verdict",
        } <= set(entry)
        assert {"metric", "ratio", "ci_low", "ci_high"} <= set(entry["effect"])
        assert set(entry["counters"]) == {entry["baseline"], entry["variant"]}
    variants = {e["variant"]: e for e in doc["studies"]}
    assert variants["plus20pct"]["verdict"] in ("slower", "no significant change")
