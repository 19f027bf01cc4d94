"""Run-time knobs: the report's optimisations as switchable variants."""

from platform_core.tuning.registry import (
    KNOBS,
    Knob,
    UnknownKnob,
    get_knob,
    parse_assignments,
    resolve,
)

__all__ = ["KNOBS", "Knob", "UnknownKnob", "get_knob", "parse_assignments", "resolve"]
