"""The A/B runner: randomised, counterbalanced, interleaved blocks with a time budget.

For every parameter point of a study the runner builds one arm per variant plus a
*second baseline arm*, so each block also holds an A/A pair measured under exactly the
same conditions: that pair gives the noise floor the verdict must clear. Within a block
every arm runs ``ops_per_block`` operations, each timed on its own; the arm order is
shuffled for even blocks and reversed for the following odd block (ABBA generalised),
so drift and warm-up favour no arm. The first block is warm-up and is discarded (but
kept in the raw samples, flagged). Exact counters (DB commands under
``count_commands()`` plus the arm's own) are taken after the timed blocks, and a
pyinstrument profile per variant at the first parameter point.

Ctrl-C stops the run cleanly: the study in progress is abandoned, everything measured
so far is written. A study that raises is recorded and the run goes on; a database that
stops answering aborts the run (results so far are kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pymongo.errors import ConnectionFailure

from bench import stats
from bench.results import RunWriter
from bench.study import Arm, Params, Study
from platform_core.db.client import close_client, create_client, ping_sync
from platform_core.observability import count_commands
from platform_core.settings import Settings

AA_ARM = "baseline_aa"
WARMUP_BLOCKS = 1
MIN_BLOCKS = stats.MIN_BLOCKS + 1  # measured blocks before the budget may stop a point


@dataclass(slots=True)
class RunOptions:
    quick: bool = False
    rtt_ms: float = 0.0
    budget_s: float | None = None  # per study; default 14 s quick, 70 s standard
    max_blocks: int | None = None
    seed: int | None = None
    profile: bool = True
    progress: bool = True
    results_root: Path | None = None
    command_line: list[str] | None = None

    @property
    def study_budget(self) -> float:
        if self.budget_s is not None:
            return self.budget_s
        return 6.0 if self.quick else 40.0

    @property
    def block_cap(self) -> int:
        if self.max_blocks is not None:
            return self.max_blocks
        return 8 if self.quick else 30


class RunAborted(RuntimeError):
    """The run cannot go on (the database stopped answering)."""


@dataclass(slots=True)
class StudyContext:
    """What a study's arms may use. Everything here lives on the runner's event loop."""

    uri: str  # the URI studies connect to (through the latency proxy when rtt_ms > 0)
    direct_uri: str
    db_name: str
    client: Any
    rtt_ms: float
    quick: bool
    scratch: Path
    _clients: list[Any] = field(default_factory=list)

    @property
    def db(self) -> Any:
        return self.client[self.db_name]

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"mongodb_uri": self.uri, "mongodb_db": self.db_name}
        values.update(overrides)
        return Settings(**values)

    def new_client(self, **options: Any) -> Any:
        """An extra client (own pool, own driver); closed by the runner after the study."""
        options.setdefault("serverSelectionTimeoutMS", 5_000)
        client = create_client(self.uri, **options)
        self._clients.append(client)
        return client

    async def close_extra_clients(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await close_client(client)


# --- the measurement loop ---------------------------------------------------------------
async def _time_ops(arm: Arm, n: int) -> list[float]:
    samples: list[float] = []
    per_call = max(1, arm.ops_per_call)
    clock = time.perf_counter_ns
    for _ in range(n):
        started = clock()
        await arm.op()
        samples.append((clock() - started) / 1e9 / per_call)
    return samples


def block_orders(labels: list[str], rng: random.Random) -> Iterator[list[str]]:
    """Shuffled order, then the same order reversed, forever (counterbalanced pairs)."""
    while True:
        order = labels[:]
        rng.shuffle(order)
        yield order
        yield order[::-1]


async def harness_overhead_ns(n: int = 2000) -> float:
    """Median cost of timing one awaited no-op: what the harness adds to each sample."""

    async def noop() -> None:
        return None

    samples = await _time_ops(Arm(op=noop), n)
    return float(np.median(samples) * 1e9)


async def run_point(
    study: Study,
    ctx: StudyContext,
    params: Params,
    point: int,
    options: RunOptions,
    writer: RunWriter,
    budget: float,
    rng: random.Random,
    tick: Any,
) -> list[dict[str, Any]]:
    """Measure every variant against the baseline at one parameter point."""
    baseline = study.baseline_variant
    others = [v for v in study.all_variants if v != baseline]
    labels = [baseline, AA_ARM, *others]
    variant_of = {label: (baseline if label == AA_ARM else label) for label in labels}
    ops = study.quick_ops_per_block if options.quick else study.ops_per_block
    params_text = _params_text(params)

    if study.setup is not None:
        await study.setup(ctx, params)
    arms: dict[str, Arm] = {}
    try:
        for label in labels:
            arms[label] = await study.make_arm(ctx, params, variant_of[label])
        per_call = max(1, arms[baseline].ops_per_call)

        measured: dict[str, list[list[float]]] = {label: [] for label in labels}
        started = time.monotonic()
        orders = block_orders(labels, rng)
        block = 0
        cap = options.block_cap + WARMUP_BLOCKS
        while block < cap:
            order = next(orders)
            for label in order:
                samples = await _time_ops(arms[label], ops)
                warm = block < WARMUP_BLOCKS
                writer.samples.extend(
                    {
                        "study": study.name,
                        "point": point,
                        "params": params_text,
                        "block": block,
                        "arm": label,
                        "variant": variant_of[label],
                        "warmup": warm,
                        "op": i,
                        "seconds": s,
                    }
                    for i, s in enumerate(samples)
                )
                if not warm:
                    measured[label].append(samples)
            block += 1
            tick()
            done = block - WARMUP_BLOCKS
            if done >= MIN_BLOCKS and time.monotonic() - started > budget:
                break

        counters = {label: await _counters(study, arms[label]) for label in [baseline, *others]}
        if options.profile and point == 0:
            for label in [baseline, *others]:
                await _profile(arms[label], writer.profiles_dir / f"{study.name}__{label}.html")
    finally:
        for arm in arms.values():
            if arm.close is not None:
                await arm.close()

    for label, values in counters.items():
        writer.counters.append({"study": study.name, "point": point, "params": params_text,
                                "variant": label, **values})  # fmt: skip

    aa_blocks = list(zip(measured[baseline], measured[AA_ARM], strict=True))
    floors = {m: _noise_floor(aa_blocks, m) for m in ("median", "p95")}
    entries = []
    for label in [AA_ARM, *others]:
        pairs = list(zip(measured[baseline], measured[label], strict=True))
        effects = {
            m: stats.summarize(
                pairs,
                metric=m,
                noise_floor=floors[m],
                lower_is_better=study.lower_is_better,
                seed=rng.randrange(2**32),
            )
            for m in ("median", "p95")
        }
        base_median = float(np.median(np.concatenate(measured[baseline])))
        var_median = float(np.median(np.concatenate(measured[label])))
        for m, effect in effects.items():
            writer.effects.append({
                "study": study.name, "knob": study.knob or "harness", "point": point,
                "params": params_text, "baseline": baseline, "variant": label,
                "statistic": m, "baseline_median_s": base_median, "variant_median_s": var_median,
                **effect.as_dict(),
            })  # fmt: skip
        if label == AA_ARM and study.knob is not None:
            continue  # the A/A pair is reported as a row of its own only for calibration
        main = effects["median"]
        entries.append({
            "study": study.name,
            "knob": study.knob or "harness",
            "section": study.section,
            "baseline": baseline,
            "variant": label,
            "params": params,
            "counters": {baseline: counters[baseline], label: counters.get(label, counters[baseline])},
            "effect": {
                "metric": f"{study.metric} median ratio (variant/baseline)",
                "ratio": _num(main.ratio), "ci_low": _num(main.ci_low), "ci_high": _num(main.ci_high),
            },
            "effect_p95": {"ratio": _num(effects["p95"].ratio), "ci_low": _num(effects["p95"].ci_low),
                           "ci_high": _num(effects["p95"].ci_high), "verdict": effects["p95"].verdict},
            "p_wilcoxon": main.p_wilcoxon,
            "noise_floor": _num(floors["median"]),
            "blocks": main.n_blocks,
            "ops_per_call": per_call,
            "baseline_median_ms": base_median * 1000,
            "variant_median_ms": var_median * 1000,
            "verdict": main.verdict,
        })  # fmt: skip
    return entries


def _noise_floor(aa_blocks: list[tuple[list[float], list[float]]], metric: str) -> float:
    if len(aa_blocks) < stats.MIN_BLOCKS:
        return 0.0
    return stats.noise_floor(aa_blocks, metric=metric)  # type: ignore[arg-type]


def _num(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(value)


def _params_text(params: Params) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "-"


async def _counters(study: Study, arm: Arm) -> dict[str, float]:
    """Exact counters for ``counter_ops`` operations of one arm."""
    n = max(1, study.counter_ops)
    with count_commands() as counted:
        for _ in range(n):
            await arm.op()
    values: dict[str, float] = {"db_commands_per_op": counted.total / n / max(1, arm.ops_per_call)}
    for name, count in sorted(counted.by_name.items()):
        values[f"cmd_{name}"] = count / n
    if arm.counters is not None:
        values.update({k: float(v) for k, v in (await arm.counters()).items()})
    return values


async def _profile(arm: Arm, path: Path, seconds: float = 0.3, max_ops: int = 200) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled", interval=0.0002)
    deadline = time.perf_counter() + seconds
    profiler.start()
    try:
        for _ in range(max_ops):
            await arm.op()
            if time.perf_counter() > deadline:
                break
    finally:
        profiler.stop()
    await asyncio.to_thread(path.write_text, profiler.output_html())


# --- a whole run ----------------------------------------------------------------------
@dataclass(slots=True)
class StudyOutcome:
    entries: list[dict[str, Any]]
    error: str | None = None


async def run_study(
    study: Study, ctx: StudyContext, options: RunOptions, writer: RunWriter,
    rng: random.Random, tick: Any,
) -> StudyOutcome:  # fmt: skip
    grid = study.grid(options.quick)
    budget = options.study_budget / len(grid)
    entries: list[dict[str, Any]] = []
    db_gone = False
    try:
        for point, params in enumerate(grid):
            entries.extend(
                await run_point(study, ctx, params, point, options, writer, budget, rng, tick)
            )
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if isinstance(exc, ConnectionFailure) and not await asyncio.to_thread(
            ping_sync, ctx.direct_uri, 2_000
        ):
            db_gone = True
            raise RunAborted(
                f"the database stopped answering during study {study.name!r}: "
                f"{type(exc).__name__}; results so far are kept"
            ) from exc
        return StudyOutcome(entries, f"{type(exc).__name__}: {exc}")
    finally:
        await ctx.close_extra_clients()
        if not db_gone:  # dropping on a dead server would only wait out the selection timeout
            with contextlib.suppress(Exception):
                await ctx.client.drop_database(ctx.db_name)
    return StudyOutcome(entries)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def progress_bar(enabled: bool) -> Any:
    """A rich progress bar on stderr (stdout is reserved for --json)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(file=sys.stderr), disable=not enabled, transient=False,
    )  # fmt: skip
