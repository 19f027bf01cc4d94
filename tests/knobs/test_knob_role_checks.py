"""Knob ``role_checks`` (report 1.1, spec 6.1): admin role checks at seeding.

The app seeds admins with the strategy chosen by settings (``app.state.strategies``).
With 102 admins, the checks of a seeding run read ``casbin_rule`` exactly 102 times
(``sequential``, ``gather``), ``ceil(102/100)`` times (``in_query``) or never
(``casbin_memory``); every strategy grants the same missing roles and stores the same rules.
"""

from __future__ import annotations

import math

import pytest

from platform_core.authz.adapter import COLLECTION as RULES
from platform_core.authz.roles import seed_admin
from platform_core.observability import count_commands
from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import ADMIN_EMAIL

NEW_ADMINS = 101
READS = {"sequential": NEW_ADMINS + 1, "gather": NEW_ADMINS + 1,
         "in_query": math.ceil((NEW_ADMINS + 1) / 100), "casbin_memory": 0}  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("role_checks"))
async def test_role_checks_at_seeding(knob_settings: Settings, variant: str) -> None:
    emails = [f"admin{i:03d}@example.com" for i in range(NEW_ADMINS)]
    async with running(knob_settings, {"role_checks": variant}) as app:
        state = app.state
        assert state.strategies.role_checks == variant
        await state.db.users.insert_many([{"email": e, "is_admin": True} for e in emails])

        async def seed() -> object:
            return await seed_admin(state.db, state.authz, state.password_hasher,
                                    state.settings, strategy=state.strategies.role_checks)  # fmt: skip

        first = await seed()  # grants the 101 missing roles
        with count_commands() as counted:
            second = await seed()  # all roles present: only the checks remain
        rules = (
            await state.db[RULES].find({"ptype": "g", "v1": "admin"}, {"_id": 0, "v0": 1}).to_list()
        )
        checks = [await state.authz.has_role_for_user(e, "admin") for e in emails[:3]]
    assert sorted(first.roles_added) == emails  # type: ignore[attr-defined]
    assert second.roles_added == []  # type: ignore[attr-defined]
    assert sorted(r["v0"] for r in rules) == sorted([*emails, ADMIN_EMAIL])
    assert checks == [True, True, True]
    assert counted.on(RULES, "find") == READS[variant]
