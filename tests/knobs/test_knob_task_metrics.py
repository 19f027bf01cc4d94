"""Knob ``task_metrics`` (report 4.3): background task durations recorded or not.

The app's background work runs through ONE task manager (``app.state.tasks``): the
managed-index builds of every registered experiment and the export cleanup loop. Both
variants run the same tasks with the same results (the same indexes are built); with
``on`` each finished task's duration is in the ``background_task_duration_seconds``
histogram on ``/metrics``, with ``off`` there is no such histogram.
"""

from __future__ import annotations

import re

import pytest

from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import client_for

INDEX_TASKS = ["analytics", "catalog", "click_tracker", "probe"]


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("task_metrics"))
async def test_same_tasks_durations_only_when_on(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"task_metrics": variant}) as app:
        service = app.state.experiment_service
        assert service.tasks is app.state.tasks  # one manager for the whole app
        stats = app.state.tasks.stats()
        reports = {
            slug: sorted((r["name"], r["status"]) for r in results)
            for slug, results in service.index_reports.items()
        }
        async with client_for(app) as http:
            metrics = (await http.get("/metrics")).text
            health = (await http.get("/healthz")).json()
    # the same work in both variants: one task per experiment with managed indexes + the
    # export cleanup loop (still running), none failed or refused
    assert sorted(reports) == INDEX_TASKS
    assert reports["probe"] == [("probe_n", "created")]
    assert (stats["started"], stats["active"], stats["failed"], stats["rejected"]) == (5, 1, 0, 0)
    assert health["tasks"] == stats
    counts = dict(re.findall(
        r'background_task_duration_seconds_count\{name="([^"]+)"\} (\S+)', metrics))  # fmt: skip
    if variant == "on":
        assert stats["timed"] == 4 and stats["metrics"] is True
        assert counts == {f"managed-indexes:{slug}": "1.0" for slug in INDEX_TASKS}
    else:
        assert stats["timed"] == 0 and stats["metrics"] is False
        assert counts == {} and "background_task_duration_seconds" not in metrics
