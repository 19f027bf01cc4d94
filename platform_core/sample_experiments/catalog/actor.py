"""Catalog actor: summary statistics over the catalog's own products."""

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
        self.slug = slug
        self.read_scopes = read_scopes
        if db is None:  # a separate process (Ray): build its own scoped database
            from platform_core.experiments.actor_db import actor_database

            db = actor_database(mongo_uri, db_name, write_scope, read_scopes)
        self.db = db

    async def stats(self) -> dict[str, Any]:
        pipeline = [
            {
                "$group": {
                    "_id": "$category",
                    "products": {"$sum": 1},
                    "avg_price": {"$avg": "$price"},
                }
            },
            {"$sort": {"_id": 1}},
        ]
        cursor = await self.db.products.aggregate(pipeline)
        rows = await cursor.to_list()
        return {
            "categories": [
                {
                    "category": r["_id"],
                    "products": r["products"],
                    "avg_price": round(r["avg_price"] or 0, 2),
                }
                for r in rows
            ]
        }
