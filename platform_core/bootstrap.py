"""Platform collections' indexes (PLATFORM_SPEC 2.13), created at startup.

Default index names (``email_1``...) on purpose: another module creating the same keys
with default options then finds them already there instead of conflicting.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import OperationFailure

log = logging.getLogger(__name__)

# Index options/name conflicts: an index with the same keys already exists under another
# name or with other options (created by an operator or an older version). Not fatal.
_CONFLICT_CODES = {85, 86}

PLATFORM_INDEXES: dict[str, list[IndexModel]] = {
    "users": [IndexModel([("email", ASCENDING)], unique=True)],
    "experiments_config": [
        IndexModel([("slug", ASCENDING)], unique=True),
        IndexModel([("owner_email", ASCENDING)]),
        IndexModel([("owner_email", ASCENDING), ("slug", ASCENDING)]),
    ],
    "export_logs": [
        IndexModel([("slug_id", ASCENDING)]),
        IndexModel([("created_at", ASCENDING)]),
        IndexModel([("checksum", ASCENDING)]),
        IndexModel([("checksum", ASCENDING), ("invalidated", ASCENDING)]),
    ],
}


async def ensure_platform_indexes(db: Any) -> None:
    """One ``createIndexes`` command per collection (idempotent)."""
    for collection, models in PLATFORM_INDEXES.items():
        try:
            await db[collection].create_indexes(models)
        except OperationFailure as exc:
            if exc.code not in _CONFLICT_CODES:
                raise
            log.warning("index on %s already exists differently: %s", collection, exc)
