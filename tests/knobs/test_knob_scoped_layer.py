"""Knobs ``wrapper_cache`` (2.2), ``vector_scope`` (5.3) and ``slots`` (9.1) reach requests.

The probe experiment's routes report what the platform handed them: whether one request's
scoped database caches its collection wrappers, whether a ``$vectorSearch`` stage of the
handler's own pipeline was mutated, and which ``ExperimentDB`` facade class it got. The
results of the data operations are the same in every variant. Unit behaviour of the three
mechanisms is in ``tests/test_scoped_collection.py`` and ``tests/test_facade.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from platform_core.settings import Settings
from tests.knobs.conftest import running, variants_of
from tests.platform.conftest import client_for

SCOPED = {"experiment_id": "probe"}


async def _session(app: Any) -> dict[str, Any]:
    """The same small request set in every variant; returns what it observed."""
    async with client_for(app) as http:
        for n in (3, 1, 2):
            assert (
                await http.post("/experiments/probe/api/items", params={"n": n})
            ).status_code == 201
        facts = (await http.get("/experiments/probe/api/facts")).json()
        items = (await http.get("/experiments/probe/api/items")).json()
        vector = (await http.post("/experiments/probe/api/vector")).json()
    return {"facts": facts, "items": items, "vector": vector}


EXPECTED_ITEMS = {"items": [{"n": 1, "experiment_id": "probe"}, {"n": 2, "experiment_id": "probe"},
                            {"n": 3, "experiment_id": "probe"}], "count": 3}  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("wrapper_cache"))
async def test_wrapper_cache(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"wrapper_cache": variant}) as app:
        seen = await _session(app)
    assert seen["items"] == EXPECTED_ITEMS
    assert seen["facts"]["wrapper_cached"] is (variant == "per_instance")


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("vector_scope"))
async def test_vector_scope(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"vector_scope": variant}) as app:
        seen = await _session(app)
    assert seen["items"] == EXPECTED_ITEMS
    # SecantusDB has no $vectorSearch: both variants send it and get the same error (115)
    assert seen["vector"]["error"] == 115
    if variant == "in_place":  # the handler's own stage now carries the scope filter
        assert seen["vector"]["filter_after"] == {"$and": [{"n": 1}, SCOPED]}
    else:
        assert seen["vector"]["filter_after"] == {"n": 1}


@pytest.mark.asyncio
@pytest.mark.parametrize("variant", variants_of("slots"))
async def test_slots_facade(knob_settings: Settings, variant: str) -> None:
    async with running(knob_settings, {"slots": variant}) as app:
        seen = await _session(app)
        async with client_for(app) as http:  # the catalog sample uses the facade too
            catalog = await http.get("/experiments/catalog/api/products")
    assert seen["items"] == EXPECTED_ITEMS
    assert catalog.status_code == 200 and catalog.json()["total"] == 0
    facts = seen["facts"]
    assert facts["facade"] == ("PlainExperimentDB" if variant == "plain" else "SlottedExperimentDB")
    assert facts["facade_has_dict"] is facts["collection_has_dict"] is (variant == "plain")
