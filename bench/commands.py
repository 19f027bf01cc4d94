"""The harness's subcommands: ``studies``, ``bench`` and ``run`` (the main job)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.console import CLIError
from bench.console import print_json as _print_json
from bench.runner import RunOptions
from bench.studies import UnknownStudy, all_studies


def cmd_studies(args: argparse.Namespace) -> int:
    rows = [study.describe() for study in all_studies().values()]
    if args.json:
        _print_json(rows)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="studies", show_lines=False)
    for column in ("name", "section", "knob", "baseline", "default", "variants"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["section"], row["knob"], row["baseline"], row["default"],
                      ", ".join(row["variants"]))  # fmt: skip
    Console().print(table)
    return 0


def _options(args: argparse.Namespace) -> RunOptions:
    if args.rtt_ms < 0 or args.rtt_ms > 1000:
        raise CLIError("--rtt-ms must be between 0 and 1000")
    return RunOptions(
        quick=args.quick,
        rtt_ms=args.rtt_ms,
        budget_s=args.budget,
        seed=args.seed,
        profile=not args.no_profile,
        progress=not args.no_progress and sys.stderr.isatty(),
        command_line=sys.argv,
    )


def _exit_code(doc: dict[str, Any]) -> int:
    if doc["interrupted"]:
        return 130
    return 1 if (doc["errors"] or doc["aborted"]) else 0


def _summarise(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"run {doc['run_id']} — {doc['backend'] and doc['backend']['name']} "
                        f"{doc['backend'] and doc['backend']['version']}, rtt {doc['rtt_ms']} ms")  # fmt: skip
    for column in ("study", "params", "baseline → variant", "ratio [95% CI]", "cmds/op", "verdict"):
        table.add_column(column)
    for e in doc["studies"]:
        eff = e["effect"]
        ci = (f"{eff['ratio']:.3f} [{eff['ci_low']:.3f}, {eff['ci_high']:.3f}]"
              if eff["ci_low"] is not None else f"{eff['ratio']:.3f} [n/a]")  # fmt: skip
        base_c = e["counters"][e["baseline"]].get("db_commands_per_op")
        var_c = e["counters"][e["variant"]].get("db_commands_per_op")
        table.add_row(e["study"], ",".join(f"{k}={v}" for k, v in e["params"].items()) or "-",
                      f"{e['baseline']} → {e['variant']}", ci, f"{base_c:g} → {var_c:g}", e["verdict"])  # fmt: skip
    console.print(table)
    for err in doc["errors"]:
        console.print(f"[red]study {err['study']} failed:[/red] {err['error']}")
    if doc["aborted"]:
        console.print(f"[red]run aborted:[/red] {doc['aborted']}")
    if doc["interrupted"]:
        console.print("[yellow]interrupted: results so far are kept[/yellow]")
    console.print(f"results: {doc['results_dir']}")


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.harness import run_bench
    from bench.proxy import ProxyError

    try:
        doc = run_bench(args.studies, _options(args))
    except (UnknownStudy, ProxyError) as exc:
        raise CLIError(str(exc)) from exc
    if args.json:
        _print_json(doc)
    else:
        _summarise(doc)
    return _exit_code(doc)


def cmd_run(args: argparse.Namespace) -> int:
    """The main job. Today: every study on the embedded default; later also load + report."""
    args.studies = ["all"]
    return cmd_bench(args)


def _bench_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smoke-run budget (≈10 s per study)")
    p.add_argument(
        "--rtt-ms", type=float, default=0.0, help="inject this round trip (latency proxy)"
    )
    p.add_argument(
        "--budget", type=float, default=None, help="seconds per study (overrides the mode)"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the block order")
    p.add_argument("--no-profile", action="store_true", help="skip the pyinstrument profiles")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "studies", help="list studies: name, report section, knob, variants, metrics"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser("bench", help="run studies A/B; writes results/<run-id>/")
    p.add_argument("studies", nargs="+", metavar="STUDY", help="study names, or 'all'")
    _bench_flags(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="the main job: every study (and later load + report)")
    _bench_flags(p)
    p.set_defaults(func=cmd_run)
