"""Small helpers shared by study modules (not a study itself: the name starts with _)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any


async def ensure_points(db: Any, name: str = "points", n: int = 500) -> Any:
    """A collection of ``n`` small documents keyed 0..n-1 (created once per study DB)."""
    coll = db[name]
    if await coll.estimated_document_count() != n:
        await coll.drop()
        await coll.insert_many([{"_id": i, "k": i % 50, "pad": "x" * 32} for i in range(n)])
    return coll


class Cycle:
    """A counter that walks 0..n-1 forever (distinct keys per op, no randomness to seed)."""

    __slots__ = ("i", "n")

    def __init__(self, n: int) -> None:
        self.i, self.n = 0, n

    def __call__(self) -> int:
        self.i = (self.i + 1) % self.n
        return self.i


def bytes_retained(work: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``work`` under tracemalloc; return its result and the bytes it left allocated
    (the result is kept alive while measuring, so what it holds is counted)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = work()
        return result, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
