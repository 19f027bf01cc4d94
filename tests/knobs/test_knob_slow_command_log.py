"""Knob ``slow_command_log`` (report 10.1): command-monitoring slow log and metrics.

With ``on`` the app's client carries a :class:`SlowCommandLog` (threshold from
``SLOW_COMMAND_THRESHOLD_MS``, 0 here so every command counts as slow): it observes
exactly the commands issued (compared with ``count_commands``), logs each with its filter
*shape* (never the values) and exposes ``db_command_duration_seconds`` on ``/metrics``.
With ``off`` nothing is attached. The operations answer the same either way.
"""

from __future__ import annotations

import logging

import pytest

from platform_core.observability import count_commands
from platform_core.observability.slow_commands import SlowCommandLog
from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import client_for

SECRET = "very-secret-value@example.com"


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("slow_command_log"))
async def test_slow_log_observes_exactly_the_commands(
    knob_settings: Settings, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(knob_settings, {"slow_command_log": variant},
                       slow_command_threshold_ms=0) as app:  # fmt: skip
        log = app.state.slow_command_log
        attached = [x for x in app.state.client.options.event_listeners
                    if isinstance(x, SlowCommandLog)]  # fmt: skip
        db = app.state.db
        observed_before = log.observed if log else 0
        slow_before = log.slow_count if log else 0
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="platform_core.slow_commands"):
            with count_commands() as counted:
                await db.probe_log.insert_one({"email": SECRET, "n": 1})
                found = await db.probe_log.find_one({"email": SECRET}, {"_id": 0})
                missing = await db.probe_log.find_one({"email": "nobody"})
                total = await db.probe_log.count_documents({"n": {"$gt": 0}})
            observed = (log.observed - observed_before) if log else 0
            slow = (log.slow_count - slow_before) if log else 0
        async with client_for(app) as http:
            metrics = (await http.get("/metrics")).text
    assert (found, missing, total) == ({"email": SECRET, "n": 1}, None, 1)
    messages = [r.getMessage() for r in caplog.records if r.name == "platform_core.slow_commands"]
    if variant == "on":
        assert attached == [log]
        assert observed == counted.total == 4 and slow == 4
        find_logs = [m for m in messages if m.startswith("slow command find on probe_log")]
        assert len(find_logs) == 2 and all("'email': 'str'" in m for m in find_logs)
        assert not any(SECRET in m for m in messages)
        assert 'db_command_duration_seconds_count{command="find"}' in metrics
    else:
        assert log is None and attached == []
        assert messages == [] and "db_command_duration_seconds" not in metrics
