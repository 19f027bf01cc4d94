"""What a study is: a plain, discoverable definition (in the spirit of asv benchmarks).

A study compares the variants of one knob on one workload. It declares a parameter grid
and a factory that builds one *arm* (a ready-to-run workload for one variant at one
parameter point). The runner owns timing, interleaving, budgets and statistics; a study
owns only the workload, so studies stay small and cannot get the measurement wrong.

    STUDY = Study(
        name="config_cache", knob="config_cache",
        description="...", params={"rtt_ms": (0,)},
        make_arm=make_arm,          # async (ctx, params, variant) -> Arm
    )
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_core.tuning.registry import get_knob

Params = dict[str, Any]


@dataclass(slots=True)
class Arm:
    """One variant at one parameter point, ready to run.

    ``op`` is the measured operation (timed one call at a time by the runner);
    ``counters`` (optional) returns exact counters after ``op`` ran once under
    observation, e.g. cache hits; ``close`` releases whatever the arm built.
    """

    op: Callable[[], Awaitable[Any]]
    counters: Callable[[], Awaitable[Mapping[str, float]]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    ops_per_call: int = 1  # when op() runs k inner operations, samples are divided by k


@dataclass(frozen=True, slots=True)
class Study:
    name: str
    knob: str | None  # None: a harness study (calibration) that is not a platform knob
    description: str
    make_arm: Callable[[Any, Params, str], Awaitable[Arm]]
    variants: tuple[str, ...] = ()  # default: the knob's variants
    baseline: str = ""  # default: the knob's baseline
    params: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    quick_params: Mapping[str, tuple[Any, ...]] | None = None
    ops_per_block: int = 20
    quick_ops_per_block: int = 8
    metric: str = "op_time"  # what one sample is (seconds per operation)
    lower_is_better: bool = True
    counter_ops: int = 1  # ops run under count_commands() per variant for the mechanism proof
    setup: Callable[[Any, Params], Awaitable[None]] | None = None  # per parameter point
    section_override: str | None = None

    @property
    def section(self) -> str:
        if self.section_override:
            return self.section_override
        return get_knob(self.knob).section if self.knob else "harness"

    @property
    def all_variants(self) -> tuple[str, ...]:
        if self.variants:
            return self.variants
        if self.knob is None:
            raise ValueError(f"study {self.name} has no knob and no variants")
        return get_knob(self.knob).variants

    @property
    def baseline_variant(self) -> str:
        if self.baseline:
            return self.baseline
        if self.knob is None:
            return self.all_variants[0]
        return get_knob(self.knob).baseline

    @property
    def default_variant(self) -> str:
        if self.knob is None:
            return self.all_variants[-1]
        return get_knob(self.knob).default

    def grid(self, quick: bool) -> list[Params]:
        source = self.quick_params if (quick and self.quick_params is not None) else self.params
        if not source:
            return [{}]
        keys = list(source)
        return [
            dict(zip(keys, values, strict=True)) for values in itertools.product(*source.values())
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "section": self.section,
            "knob": self.knob or "harness",
            "variants": list(self.all_variants),
            "baseline": self.baseline_variant,
            "default": self.default_variant,
            "metrics": [f"{self.metric} (median, p95 ratio)", *self._proof()],
            "params": {k: list(v) for k, v in self.params.items()},
            "description": self.description,
        }

    def _proof(self) -> list[str]:
        return [get_knob(self.knob).proof] if self.knob else ["known injected slowdown"]
