"""Analytics actor: the same summary, computed where the actor runs."""

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

    async def top_pages(self, limit: int = 10) -> list[dict[str, Any]]:
        from . import summary

        return await summary(self.db, limit)
