"""A role store that asks MongoDB on every check (the baseline for knob ``role_checks``).

Casbin answers role questions from memory. To test the report's "N+1 role checks" claim
honestly (PLATFORM_SPEC 6.1), the workbench needs the thing the report imagined: a store
whose every check is a database round trip. It reads the same ``casbin_rule`` rows
(``ptype="g", v0=user, v1=role``), so its answers equal Casbin's for direct roles.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from platform_core.authz.adapter import COLLECTION

# SecantusDB's $in cost grows with keys x docs (STACK_NOTES); 100 keys per query is the
# measured sweet spot, and mongod does not mind.
IN_CHUNK = 100


class MongoRoleStore:
    __slots__ = ("chunk_size", "collection")

    def __init__(self, db: Any, collection: str = COLLECTION, chunk_size: int = IN_CHUNK) -> None:
        if not 1 <= chunk_size <= IN_CHUNK:
            raise ValueError(f"chunk_size must be within 1..{IN_CHUNK}")
        self.collection = db[collection]
        self.chunk_size = chunk_size

    async def has_role_for_user(self, user: str, role: str) -> bool:
        """One ``find_one`` per call."""
        doc = await self.collection.find_one(
            {"ptype": "g", "v0": user, "v1": role}, projection={"_id": 1}
        )
        return doc is not None

    async def has_roles_for_users(self, users: Iterable[str], role: str) -> dict[str, bool]:
        """One ``$in`` query per ``chunk_size`` users; answers for every user given."""
        unique = list(dict.fromkeys(users))
        holders: set[str] = set()
        for start in range(0, len(unique), self.chunk_size):
            chunk = unique[start : start + self.chunk_size]
            cursor = self.collection.find(
                {"ptype": "g", "v1": role, "v0": {"$in": chunk}}, projection={"_id": 0, "v0": 1}
            )
            async for doc in cursor:
                holders.add(doc["v0"])
        return {user: user in holders for user in unique}
