"""Manifest validation (PLATFORM_SPEC 5): per-field errors, strict auth_policy, extras kept."""

from __future__ import annotations

import json

import pytest

from platform_core.experiments.discovery import PACKAGE_SAMPLES, read_manifest
from platform_core.experiments.manifest import (
    ManifestError,
    parse_manifest_text,
    validate_manifest,
)


def fields_of(exc: ManifestError) -> set[str]:
    return {e["field"] for e in exc.errors}


@pytest.mark.parametrize("slug", ["catalog", "click_tracker", "analytics"])
def test_sample_manifests_are_valid(slug: str) -> None:
    manifest = read_manifest(PACKAGE_SAMPLES / slug)
    assert manifest.declared_slug == slug
    assert manifest.status == "active"


def test_unknown_top_level_keys_are_kept() -> None:
    m = validate_manifest({"name": "x", "catalog_settings": {"page_size": 5}})
    assert m.to_config()["catalog_settings"] == {"page_size": 5}
    assert m.data_scope == ["self"]


def test_auth_policy_is_strict_and_names_the_field() -> None:
    with pytest.raises(ManifestError) as err:
        validate_manifest({"name": "x", "auth_policy": {"allow_anonymus": True}})
    assert "auth_policy.allow_anonymus" in fields_of(err.value)
    assert "auth_policy.allow_anonymus" in str(err.value)


@pytest.mark.parametrize(
    ("manifest", "field"),
    [
        ({}, "name"),
        ({"name": " "}, "name"),
        ({"name": "x", "slug": "../.."}, "slug"),
        ({"name": "x", "slug_id": "A"}, "slug_id"),
        ({"name": "x", "slug": "a-b"}, "slug"),
        ({"name": "x", "slug": "cаtalog"}, "slug"),  # Cyrillic а
        ({"name": "x", "status": "live"}, "status"),
        ({"name": "x", "data_scope": ["self", "../x"]}, "data_scope"),
        ({"name": "x", "data_scope": []}, "data_scope"),
        ({"name": "x", "schema_version": "two"}, "schema_version"),
        (
            {"name": "x", "auth_policy": {"required_permissions": ["a:b:c"]}},
            "auth_policy.required_permissions",
        ),
        (
            {"name": "x", "auth_policy": {"custom_actions": ["delete"]}},
            "auth_policy.custom_actions.0",
        ),
        ({"name": "x", "developer_id": "nobody"}, "developer_id"),
        ({"name": "x", "managed_indexes": {"a.b": []}}, "managed_indexes"),
        (
            {
                "name": "x",
                "managed_indexes": {"c": [{"name": "t", "type": "ttl", "keys": {"ts": 1}}]},
            },
            "managed_indexes.c.0",
        ),
        (
            {
                "name": "x",
                "managed_indexes": {"c": [{"name": "p", "type": "partial", "keys": {"a": 1}}]},
            },
            "managed_indexes.c.0",
        ),
        (
            {
                "name": "x",
                "managed_indexes": {"c": [{"name": "r", "type": "regular", "keys": {"a": 2}}]},
            },
            "managed_indexes.c.0.keys",
        ),
        (
            {
                "name": "x",
                "managed_indexes": {"c": [{"name": "r", "type": "bogus", "keys": {"a": 1}}]},
            },
            "managed_indexes.c.0.type",
        ),
        (
            {
                "name": "x",
                "managed_indexes": {"c": [{"name": "$bad", "type": "regular", "keys": {"a": 1}}]},
            },
            "managed_indexes.c.0.name",
        ),
        ({"name": "x", "sub_auth": {"session_ttl_seconds": 5}}, "sub_auth.session_ttl_seconds"),
    ],
)
def test_bad_fields_are_named(manifest: dict, field: str) -> None:
    with pytest.raises(ManifestError) as err:
        validate_manifest(manifest)
    assert field in fields_of(err.value), err.value.errors


def test_index_keys_normalised_from_dict_and_pairs() -> None:
    m = validate_manifest({"name": "x", "managed_indexes": {"c": [
        {"name": "a", "type": "regular", "keys": {"a": 1, "b": -1}},
        {"name": "b", "type": "regular", "keys": [["a", 1], ["b", -1]]},
        {"name": "t", "type": "ttl", "keys": {"ts": 1}, "options": {"expireAfterSeconds": 60}},
    ]}})  # fmt: skip
    first, second, _ = m.to_config()["managed_indexes"]["c"]
    assert first["keys"] == second["keys"] == [["a", 1], ["b", -1]]


def test_text_parsing_errors_are_clear() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_manifest_text("{nope")
    with pytest.raises(ManifestError, match="JSON object"):
        parse_manifest_text("[1, 2]")
    with pytest.raises(ManifestError, match="larger than"):
        parse_manifest_text(json.dumps({"name": "x", "pad": "a" * 300_000}))


def test_slug_and_slug_id_must_agree() -> None:
    with pytest.raises(ManifestError, match="differ"):
        validate_manifest({"name": "x", "slug": "a", "slug_id": "b"})
    assert validate_manifest({"name": "x", "slug_id": "b"}).declared_slug == "b"
