"""Click tracker actor: counts clicks (an example of actor-side database work)."""

from __future__ import annotations

from typing import Any


class ExperimentActor:
    def __init__(
        self,
        *,
        slug: str,
        write_scope: str,
        read_scopes: list[str],
        db: Any = None,
        mongo_uri: str | None = None,
        db_name: str | None = None,
        **_: Any,
    ) -> None:
        if db is None:
            from platform_core.experiments.actor_db import actor_database

            db = actor_database(mongo_uri, db_name, write_scope, read_scopes)
        self.db = db

    async def count(self, page: str | None = None) -> int:
        return await self.db.clicks.count_documents({"page": page} if page else {})
