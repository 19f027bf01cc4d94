"""Database access for the platform: driver-neutral clients and per-experiment scoping."""

from platform_core.db.autoindex import AutoIndexManager
from platform_core.db.backend import BackendInfo, detect_backend
from platform_core.db.client import (
    DatabaseUnavailable,
    client_from_settings,
    close_client,
    create_client,
    maybe_await,
)
from platform_core.db.indexes import PROCESS_INDEX_GUARD, IndexGuard
from platform_core.db.scoped import (
    ScopedCollection,
    ScopedCollectionWrapper,
    ScopedDatabase,
    ScopedMongoWrapper,
    ScopeViolation,
)
from platform_core.db.slugs import validate_collection_base_name, validate_slug

__all__ = [
    "PROCESS_INDEX_GUARD",
    "AutoIndexManager",
    "BackendInfo",
    "DatabaseUnavailable",
    "IndexGuard",
    "ScopeViolation",
    "ScopedCollection",
    "ScopedCollectionWrapper",
    "ScopedDatabase",
    "ScopedMongoWrapper",
    "client_from_settings",
    "close_client",
    "create_client",
    "detect_backend",
    "maybe_await",
    "validate_collection_base_name",
    "validate_slug",
]
