"""Deterministic demo data for the platform (``workbench seed``).

``seed_demo_data(db, ...)`` writes, for a given ``seed``, always the same:

* users ``user000@example.com``... (every third one a developer) and admins
  ``admin0@example.com``..., all with the password :data:`DEMO_PASSWORD`, hashed once per
  run with bcrypt at :data:`DEMO_BCRYPT_ROUNDS` rounds (fast on purpose: seeding 1000 users
  must not cost 1000 × 0.2 s; logins still verify normally). Roles go to ``casbin_rule``
  (a running app loads them at its next start);
* the configs of the sample experiments (as the platform's own startup seeding would);
* ``catalog_products`` (SKU, name, category, price, stock) and ``click_tracker_clicks``
  (page, element, ts, user), tagged with their ``experiment_id``, ``docs_per_collection``
  each (default 2000; keep it ≤ 10 000 on the embedded DB, STACK_NOTES).

Re-running replaces the previously seeded documents (``seed_tag``), so it is idempotent.
Click timestamps are relative to ``now`` (default: the current time) so that the click
tracker's TTL index keeps them; pass ``now`` for byte-identical runs.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from platform_core.authz.adapter import COLLECTION as CASBIN_RULES
from platform_core.authz.adapter import rule_to_doc
from platform_core.settings import Settings

DEMO_PASSWORD = "demo-password-123"
DEMO_BCRYPT_ROUNDS = 4
SEED_TAG = "demo"
BATCH = 1000
MAX_DOCS = 10_000
CATEGORIES = ("books", "games", "garden", "kitchen", "music", "outdoor", "tools", "toys")
PAGES = ("home", "pricing", "docs", "blog", "signup", "login", "about", "careers", "faq", "api")
ELEMENTS = ("nav", "cta", "footer", "card", "banner")
ADJECTIVES = ("Compact", "Deluxe", "Classic", "Smart", "Rugged", "Eco", "Pro", "Mini")
NOUNS = ("Lamp", "Kettle", "Drone", "Puzzle", "Shovel", "Speaker", "Tent", "Novel", "Wrench")


def _users(rng: random.Random, users: int, admins: int, password_hash: bytes,
           now: datetime) -> list[dict[str, Any]]:  # fmt: skip
    docs = []
    for i in range(admins):
        docs.append({"email": f"admin{i}@example.com", "password_hash": password_hash,
                     "is_admin": True, "created_at": now, "roles": ["admin"]})  # fmt: skip
    for i in range(users):
        roles = ["developer"] if i % 3 == 0 else ["user"]
        docs.append({"email": f"user{i:03d}@example.com", "password_hash": password_hash,
                     "is_admin": False, "created_at": now, "roles": roles})  # fmt: skip
    return docs


def _products(rng: random.Random, n: int) -> list[dict[str, Any]]:
    docs = []
    for i in range(n):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i:05d}"
        docs.append({
            "sku": f"SKU-{i:05d}",
            "name": name,
            "category": CATEGORIES[rng.randrange(len(CATEGORIES))],
            "price": round(rng.uniform(2, 500), 2),
            "stock": rng.randrange(0, 250),
            "description": f"{name}: demo product number {i}.",
            "experiment_id": "catalog",
            "seed_tag": SEED_TAG,
        })  # fmt: skip
    return docs


def _clicks(rng: random.Random, n: int, users: int, now: datetime) -> list[dict[str, Any]]:
    weights = [1 / (rank + 1) for rank in range(len(PAGES))]  # Zipf-like popularity
    docs = []
    for _ in range(n):
        user = (
            f"user{rng.randrange(users):03d}@example.com" if users and rng.random() < 0.6 else None
        )
        docs.append({
            "page": rng.choices(PAGES, weights)[0],
            "element": rng.choice(ELEMENTS),
            "ts": now - timedelta(seconds=rng.randrange(7 * 24 * 3600)),
            "user": user,
            "experiment_id": "click_tracker",
            "seed_tag": SEED_TAG,
        })  # fmt: skip
    return docs


async def _replace_seeded(coll: Any, docs: list[dict[str, Any]]) -> int:
    await coll.delete_many({"seed_tag": SEED_TAG})
    for start in range(0, len(docs), BATCH):
        await coll.insert_many(docs[start : start + BATCH], ordered=False)
    return len(docs)


SAMPLE_SLUGS: tuple[str, ...] = ("catalog", "click_tracker", "analytics")
MAX_EXPERIMENTS = 500


async def _seed_users(db: Any, docs: list[dict[str, Any]]) -> None:
    ops = []
    rules = []
    for doc in docs:
        roles = doc.pop("roles")
        ops.append(UpdateOne({"email": doc["email"]}, {"$setOnInsert": doc}, upsert=True))
        rules.extend(rule_to_doc("g", [doc["email"], role]) for role in roles)
    if ops:
        await db["users"].bulk_write(ops, ordered=False)
    rule_ops = [UpdateOne(rule, {"$setOnInsert": rule}, upsert=True) for rule in rules]
    if rule_ops:
        try:
            await db[CASBIN_RULES].bulk_write(rule_ops, ordered=False)
        except BulkWriteError as exc:  # concurrent duplicate upserts on the unique index
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise


async def seed_demo_data(
    db: Any,
    *,
    experiments: Sequence[str] | int = SAMPLE_SLUGS,
    users: int = 50,
    admins: int = 1,
    docs_per_collection: int = 2000,
    seed: int = 42,
    now: datetime | None = None,
    configs: bool = True,
) -> dict[str, Any]:
    """Write the demo data set into ``db`` (the unscoped platform database).

    ``experiments`` is a list of sample slugs, or a number N: the first N samples and,
    beyond the three samples, N-3 extra ``draft`` configs without code (``demo_<i>``) so
    admin pages and config lookups see a realistic number of experiments.
    """
    extra = 0
    if isinstance(experiments, int):
        if not 0 <= experiments <= MAX_EXPERIMENTS:
            raise ValueError(f"experiments must be between 0 and {MAX_EXPERIMENTS}")
        extra = max(0, experiments - len(SAMPLE_SLUGS))
        experiments = SAMPLE_SLUGS[:experiments]
    if not 0 <= docs_per_collection <= MAX_DOCS:
        raise ValueError(f"docs_per_collection must be between 0 and {MAX_DOCS}")
    if users < 0 or admins < 0:
        raise ValueError("users and admins must not be negative")
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    password_hash = await asyncio.to_thread(
        bcrypt.hashpw, DEMO_PASSWORD.encode(), bcrypt.gensalt(DEMO_BCRYPT_ROUNDS)
    )
    report: dict[str, Any] = {"seed": seed, "users": users, "admins": admins, "collections": {},
                              "password": DEMO_PASSWORD}  # fmt: skip
    await _seed_users(db, _users(rng, users, admins, password_hash, now))
    if configs:
        from platform_core.experiments.discovery import PACKAGE_SAMPLES, discover, seed_configs

        found = [d for d in await asyncio.to_thread(discover, PACKAGE_SAMPLES)
                 if d.slug in experiments]  # fmt: skip
        seeded = await seed_configs(db, found, strategy="in_query")
        report["configs"] = {"inserted": seeded.inserted, "existing": seeded.existing}
        if extra:
            await db["experiments_config"].bulk_write(
                [UpdateOne({"slug": f"demo_{i}"},
                           {"$setOnInsert": {"slug": f"demo_{i}", "name": f"Demo experiment {i}",
                                             "status": "draft", "data_scope": ["self"],
                                             "created_at": now}},
                           upsert=True)
                 for i in range(extra)],
                ordered=False,
            )  # fmt: skip
            report["configs"]["drafts"] = extra
    if "catalog" in experiments:
        n = await _replace_seeded(db["catalog_products"], _products(rng, docs_per_collection))
        report["collections"]["catalog_products"] = n
    if "click_tracker" in experiments:
        docs = _clicks(rng, docs_per_collection, users, now)
        report["collections"]["click_tracker_clicks"] = await _replace_seeded(
            db["click_tracker_clicks"], docs
        )
    return report


def run_seed(settings: Settings, **options: Any) -> dict[str, Any]:
    """Synchronous entry point (CLI, notebooks): connect, seed, close."""
    from platform_core.db.client import client_from_settings, close_client

    async def main() -> dict[str, Any]:
        client = client_from_settings(settings)
        try:
            return await seed_demo_data(client[settings.mongodb_db], **options)
        finally:
            await close_client(client)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    import nest_asyncio  # a running loop (Jupyter): re-enter it

    nest_asyncio.apply()
    return asyncio.get_event_loop().run_until_complete(main())
