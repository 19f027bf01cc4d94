"""Instrumentation built into the platform: DB command counts, pool events, loop lag."""

from platform_core.observability.commands import (
    CommandCount,
    CommandCounter,
    command_counter,
    count_commands,
)
from platform_core.observability.looplag import LagStats, LoopLagMonitor
from platform_core.observability.pool import PoolMonitor, PoolSnapshot

__all__ = [
    "CommandCount",
    "CommandCounter",
    "LagStats",
    "LoopLagMonitor",
    "PoolMonitor",
    "PoolSnapshot",
    "command_counter",
    "count_commands",
]
