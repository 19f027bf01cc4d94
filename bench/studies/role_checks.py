"""Admin role checks at seeding (report 1.1): sequential queries, gather, one $in, Casbin.

The workload is the seeding step "which of these N admins hold the admin role?", against
a ``casbin_rule`` collection holding N role grants. The report promised N round trips → 1
batch; the spec's fact check says Casbin answers from memory with 0 round trips. All four
strategies are run so both claims can be measured (commands per check and time).
"""

from __future__ import annotations

from typing import Any

from bench.study import Arm, Params, Study
from platform_core.authz.casbin_provider import CasbinProvider
from platform_core.authz.role_checks import check_admin_roles
from platform_core.authz.role_store import MongoRoleStore

_state: dict[tuple[int, int], tuple[list[str], CasbinProvider]] = {}


async def _setup(ctx: Any, params: Params) -> None:
    admins = int(params["admins"])
    rules = ctx.db["casbin_rule"]
    await rules.drop()
    emails = [f"admin{i:05d}@example.com" for i in range(admins)]
    await rules.insert_many([{"ptype": "g", "v0": e, "v1": "admin"} for e in emails])
    await rules.create_index([("ptype", 1), ("v0", 1), ("v1", 1)])
    provider = await CasbinProvider.create(ctx.db)
    _state[(id(ctx), admins)] = (emails, provider)


async def _make_arm(ctx: Any, params: Params, variant: str) -> Arm:
    emails, provider = _state[(id(ctx), int(params["admins"]))]
    store = MongoRoleStore(ctx.db)

    async def op() -> None:
        answers = await check_admin_roles(emails, variant, provider=provider, store=store)  # type: ignore[arg-type]
        if not all(answers.values()):  # every strategy must agree: all hold the role
            raise AssertionError(f"strategy {variant} disagrees about admin roles")

    return Arm(op=op)


STUDY = Study(
    name="role_checks",
    knob="role_checks",
    description="Is each of N admins an admin? Sequential find_one, gather, $in chunks, Casbin memory.",
    make_arm=_make_arm,
    setup=_setup,
    params={"admins": (10, 100, 1000)},
    quick_params={"admins": (10, 100)},
    ops_per_block=3,
    quick_ops_per_block=3,
    metric="seconds per seeding check",
)
