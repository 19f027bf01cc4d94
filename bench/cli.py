"""``workbench``: the one command-line entry point.

Subcommands are thin: each parses its flags and calls a plain function of the package
(the same functions a notebook calls). ``--json`` prints exactly one JSON document on
stdout and nothing else; human-readable progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from bench import commands
from bench.console import CLIError
from bench.console import err as _err
from bench.console import print_json as _print_json
from bench.embedded_db import EmbeddedDBError, EmbeddedMongo, database


# --- db ---------------------------------------------------------------------------------
def cmd_db(args: argparse.Namespace) -> int:
    server = EmbeddedMongo(port=args.port, storage_path=args.storage_path)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with server:
            if args.json:
                _print_json(
                    {"uri": server.uri, "pid": server.pid, "backend": server.backend.as_dict()}
                )
            else:
                print(server.uri, flush=True)
                _err(f"{server.backend.label} running (pid {server.pid}); Ctrl-C to stop")
            while not stop.wait(0.5):
                if not server.running:
                    raise CLIError("the embedded database exited unexpectedly")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


# --- serve ------------------------------------------------------------------------------
def _settings_from_args(args: argparse.Namespace, uri: str | None = None) -> Any:
    from platform_core.settings import Settings

    overrides: dict[str, Any] = {}
    if uri:
        overrides["mongodb_uri"] = uri
    tuning = getattr(args, "tuning", None)
    sets = getattr(args, "set", None) or []
    if tuning:
        overrides["tuning"] = tuning
    if sets:
        overrides["knobs"] = ",".join(sets)
    try:
        return Settings(**overrides)
    except Exception as exc:  # pydantic ValidationError: show the messages, not a traceback
        raise CLIError(f"invalid settings: {exc}") from exc


def cmd_serve(args: argparse.Namespace) -> int:
    from platform_core.server import run_server

    _settings_from_args(args)  # validate flags before starting anything
    with database() as server:
        settings = _settings_from_args(args, server.uri)
        _err(f"platform on http://{args.host}:{args.port} against {server.backend.label}")
        run_server(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


# --- seed -------------------------------------------------------------------------------
def cmd_seed(args: argparse.Namespace) -> int:
    from platform_core.seed import run_seed

    _settings_from_args(args)  # validate flags before starting anything
    with database() as server:
        if not os.environ.get("MONGODB_URI"):
            _err("note: MONGODB_URI is unset, so this seeds a throw-away embedded database; "
                 "point MONGODB_URI at a server (e.g. `workbench db --storage-path DIR`) to keep it")  # fmt: skip
        settings = _settings_from_args(args, server.uri)
        summary = run_seed(
            settings,
            experiments=args.experiments,
            users=args.users,
            admins=args.admins,
            docs_per_collection=args.docs,
        )
    if args.json:
        _print_json(summary)
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


# --- parser -----------------------------------------------------------------------------
def _knob_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tuning", choices=["baseline", "optimized"], help="set every knob at once")
    p.add_argument(
        "--set", action="append", metavar="KNOB=VARIANT", help="set one knob (repeatable)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("db", help="run the embedded MongoDB in the foreground, print its URI")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.add_argument("--storage-path", default=":memory:", help="data directory (default: in memory)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser(
        "serve", help="run the platform (uvicorn) against MONGODB_URI or an embedded DB"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    _knob_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("seed", help="load deterministic demo data into the DB")
    p.add_argument("--experiments", type=int, default=3)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--admins", type=int, default=2)
    p.add_argument("--docs", type=int, default=2000, help="documents per collection (≤ 10000)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_seed)

    commands.register(sub)  # studies, bench, run: defined next to the harness
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, EmbeddedDBError) as exc:
        _err(f"workbench: error: {exc}")
        return 2
    except KeyboardInterrupt:
        _err("workbench: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
