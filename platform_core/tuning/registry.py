"""The knob registry: every optimisation of the performance report as a run-time switch.

A knob names the report section(s) it answers, its variants, which variant reproduces the
"before" behaviour (``baseline``) and which is the platform's default (the best one
measured), and the counter or metric that proves its mechanism. Settings pick variants at
run time (``TUNING=baseline|optimized`` for all, ``KNOBS="name=variant,..."`` for some);
code asks :func:`active_knobs` or ``settings.knob(name)`` and never hard-codes a choice.

Security fixes are deliberately *not* knobs: no variant re-opens a hole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Tuning = Literal["baseline", "optimized"]


@dataclass(frozen=True, slots=True)
class Knob:
    name: str
    sections: tuple[str, ...]  # report sections, e.g. ("1.2", "2.1"), or ("extra",)
    variants: tuple[str, ...]
    baseline: str
    default: str
    description: str
    proof: str  # the exact counter or metric that shows the mechanism
    notes: str = ""
    extra_finding: str | None = field(default=None)  # spec item for findings the report missed

    def __post_init__(self) -> None:
        for chosen in (self.baseline, self.default):
            if chosen not in self.variants:
                raise ValueError(f"knob {self.name}: {chosen!r} is not one of {self.variants}")

    @property
    def section(self) -> str:
        return "extra" if self.extra_finding else self.sections[0]

    def variant_for(self, tuning: Tuning) -> str:
        return self.baseline if tuning == "baseline" else self.default

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "section": self.section,
            "sections": list(self.sections),
            "variants": list(self.variants),
            "baseline": self.baseline,
            "default": self.default,
            "description": self.description,
            "proof": self.proof,
            "notes": self.notes,
        }


KNOBS: tuple[Knob, ...] = (
    Knob("role_checks", ("1.1",), ("sequential", "gather", "in_query", "casbin_memory"),
         "sequential", "casbin_memory",
         "Admin role checks at seeding: one MongoDB query per admin in sequence, asyncio.gather, "
         "one $in query (chunks of 100), or Casbin's in-memory enforcer.",
         "DB commands per seeding run (N, N, ceil(N/100), 0)",
         "Spec 6.1: with Casbin's in-memory policy store the report's N+1 saves no round trips."),
    Knob("config_cache", ("1.2", "2.1"),
         ("none", "request", "request_ttl", "request_ttl_singleflight"),
         "none", "request_ttl_singleflight",
         "Experiment-config lookups: no cache, request-scoped, request + app TTL/LRU with "
         "invalidation, plus stampede protection.",
         "experiments_config finds per request; cache hits/misses/coalesced"),
    Knob("index_guard", ("1.3", "5.2"), ("per_wrapper", "once_per_process"),
         "per_wrapper", "once_per_process",
         "experiment_id index check per scoped collection wrapper vs once per collection per "
         "process under a lock (failed checks retried).",
         "listIndexes/createIndexes commands for N concurrent first uses"),
    Knob("query_tracker", ("1.4",), ("unbounded", "lru"), "unbounded", "lru",
         "AutoIndexManager pattern counts: unbounded dict vs bounded LRU (1000).",
         "tracked patterns and tracemalloc bytes after 100k distinct patterns"),
    Knob("wrapper_cache", ("2.2",), ("none", "per_instance"), "per_instance", "per_instance",
         "Scoped collection wrappers rebuilt on every access vs cached per scoped database.",
         "wrapper objects built per request",
         "Spec 6.5: the per-instance cache saves a few µs; an invalidation hook buys nothing."),
    Knob("template_cache", ("2.3",), ("none", "fs_bytecode_cache"), "none", "fs_bytecode_cache",
         "Jinja2 without vs with a file-system bytecode cache (cold start of a fresh process).",
         "first-render time in a fresh process"),
    Knob("export_build", ("3.1",), ("on_loop", "thread"), "on_loop", "thread",
         "Experiment export ZIP built in memory on the event loop vs in a worker thread streamed "
         "to a temp file.",
         "event-loop lag p99 during an export"),
    Knob("requirements_parse", ("3.2",), ("at_import", "lazy"), "at_import", "lazy",
         "Platform requirements parsed synchronously at import vs lazily on first use.",
         "import time of the export module",
         "Spec 6.8: microseconds at startup; expected to be unmeasurable."),
    Knob("dir_scan", ("3.3",), ("uncached", "ttl"), "uncached", "ttl",
         "Admin file tree: directory walked on every view vs TTL cache invalidated on "
         "upload/save/delete.",
         "os.scandir calls per view"),
    Knob("pool_size", ("4.1",), ("driver_default", "tuned"), "driver_default", "tuned",
         "Main client pool: driver defaults (max 100, min 0) vs tuned (MONGODB_MAX_POOL_SIZE/"
         "MIN_POOL_SIZE, 50/10 by default); the pool study sweeps sizes.",
         "connections created; check-out wait p99"),
    Knob("actor_client", ("4.2",), ("per_call", "shared"), "per_call", "shared",
         "Actor DB client: a new client per actor database (the reference's broken singleton) "
         "vs one shared client per process.",
         "connections created per N actor databases"),
    Knob("task_metrics", ("4.3",), ("off", "on"), "off", "on",
         "Background task duration metrics and slow-task logging.",
         "per-task overhead (µs)"),
    Knob("index_tasks", ("5.1",), ("unbounded", "bounded"), "unbounded", "bounded",
         "Auto-index work per find(): a fire-and-forget task every call vs synchronous counting "
         "with a bounded, strongly referenced task only at the threshold.",
         "tasks created per 1000 finds"),
    Knob("vector_scope", ("5.3",), ("in_place", "copy"), "in_place", "copy",
         "$vectorSearch scope merge mutating the caller's pipeline vs on a deep copy.",
         "nested $and depth after reusing a pipeline object"),
    Knob("routes", ("7.1",), ("append", "replace"), "append", "replace",
         "Experiment reload: include_router again (routes pile up) vs one route set per slug.",
         "len(app.routes) after N reloads; 404 latency",
         "Spec 6.14: the report's per-request router creation does not exist."),
    Knob("static_cache", ("7.2",), ("plain", "cached"), "plain", "cached",
         "Experiment static files without vs with Cache-Control/ETag (conditional GET → 304).",
         "requests and bytes per repeated page view"),
    Knob("export_cleanup", ("8.1",), ("on_loop", "thread"), "on_loop", "thread",
         "Old-export cleanup: glob/stat/unlink on the event loop vs in a worker thread.",
         "event-loop lag p99 during cleanup of N files"),
    Knob("slots", ("9.1",), ("plain", "slots"), "plain", "slots",
         "Frequently created facade objects as plain classes vs with __slots__.",
         "bytes per instance (tracemalloc)"),
    Knob("slow_command_log", ("10.1",), ("off", "on"), "off", "on",
         "Command-monitoring based slow-query logging and per-command metrics.",
         "per-command overhead (µs)"),
    Knob("seed_lookup", ("extra",), ("per_folder", "in_query"), "per_folder", "in_query",
         "Seeding experiment configs from folders: one find_one per folder vs one $in query.",
         "DB commands per startup seeding", extra_finding="6.1"),
    Knob("autoindex_order", ("extra",), ("set_order", "esr"), "set_order", "esr",
         "Auto-index field order: hash-seed dependent set order (reference) vs equality, sort, "
         "range.",
         "distinct index names for one query shape across processes", extra_finding="6.4"),
    Knob("driver", ("extra",), ("motor", "pymongo"), "motor", "pymongo",
         "MongoDB driver: motor (thread pool, deprecated) vs PyMongo's native AsyncMongoClient.",
         "point-op latency; threads", extra_finding="2.3"),
    Knob("password_hashing", ("extra",), ("inline", "thread"), "inline", "thread",
         "bcrypt on the event loop vs in a worker thread.",
         "event-loop lag p99 during logins", extra_finding="9"),
)  # fmt: skip

_BY_NAME = {knob.name: knob for knob in KNOBS}


class UnknownKnob(ValueError):
    pass


def get_knob(name: str) -> Knob:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownKnob(
            f"unknown knob {name!r}; valid knobs: {', '.join(sorted(_BY_NAME))}"
        ) from None


def parse_assignments(text: str | list[str] | None) -> dict[str, str]:
    """Parse ``"a=x,b=y"`` (or a list of ``"a=x"``) and validate every name and variant."""
    if not text:
        return {}
    items = text if isinstance(text, list) else text.split(",")
    chosen: dict[str, str] = {}
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        name, sep, variant = item.partition("=")
        name, variant = name.strip(), variant.strip()
        if not sep or not name or not variant:
            raise ValueError(f"knob setting {item!r} is not of the form KNOB=VARIANT")
        knob = get_knob(name)
        if variant not in knob.variants:
            raise ValueError(
                f"knob {name!r} has no variant {variant!r}; valid: {', '.join(knob.variants)}"
            )
        chosen[name] = variant
    return chosen


def resolve(
    tuning: Tuning = "optimized", overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """Every knob's active variant: the tuning preset, then explicit overrides."""
    active = {knob.name: knob.variant_for(tuning) for knob in KNOBS}
    for name, variant in (overrides or {}).items():
        parse_assignments(f"{name}={variant}")  # validates
        active[name] = variant
    return active
