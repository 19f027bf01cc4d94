"""Knob ``password_hashing`` (PLATFORM_SPEC 9): bcrypt on the event loop or in a thread.

Logins succeed with both. Exact proof: the bcrypt check of a login runs on the event-loop
thread with ``inline`` and in a worker thread with ``thread``. During a login with a
10-round hash (~50 ms of CPU) the loop is blocked for about that long with ``inline``
and barely at all with ``thread``.
"""

from __future__ import annotations

import threading

import bcrypt
import pytest

from platform_core.settings import Settings
from tests.knobs.conftest import lag_during, running, variants_of
from tests.platform.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, client_for


@pytest.mark.asyncio
async def test_logins_succeed_and_thread_keeps_the_loop_free(
    knob_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[int] = []
    real_checkpw = bcrypt.checkpw

    def recording_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(threading.get_ident())
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", recording_checkpw)
    results = {}
    for variant in variants_of("password_hashing"):
        checks.clear()
        async with running(knob_settings, {"password_hashing": variant}, bcrypt_rounds=10) as app:
            assert app.state.password_hasher.mode == variant
            async with client_for(app) as http:
                form = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/"}
                response, lag = await lag_during(http.post("/auth/login", data=form))
                wrong = await http.post("/auth/login", data={**form, "password": "not-it-123"})
                assert (await http.get("/admin/api/users")).status_code == 200
        results[variant] = {"status": response.status_code, "cookie": "token" in response.cookies,
                            "wrong": wrong.status_code, "threads": list(checks), "lag": lag}  # fmt: skip
    loop_thread = threading.get_ident()
    for variant, result in results.items():
        assert (result["status"], result["cookie"]) == (303, True)
        assert result["wrong"] == results["thread"]["wrong"] != 303
        assert len(result["threads"]) == 2  # one check per login attempt
        on_loop = {t == loop_thread for t in result["threads"]}
        assert on_loop == {variant == "inline"}
    inline, thread = results["inline"]["lag"], results["thread"]["lag"]
    assert inline.max_ms > 20.0 and thread.p99_ms < inline.max_ms / 3, (inline, thread)
