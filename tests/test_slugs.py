"""Slug and collection-name validation, and exact (never bare-prefix) ownership."""

from __future__ import annotations

import pytest

from platform_core.db.slugs import (
    MAX_SLUG_LENGTH,
    SLUG_RE,
    owner_of,
    physical_collection_name,
    validate_collection_base_name,
    validate_slug,
)

BAD_NAMES = [
    "",
    "Clicks",
    "a-b",
    "a.b",
    "../x",
    "..",
    "a/b",
    "a\\b",
    "a b",
    "$cmd",
    "abc\n",  # `$` in SLUG_RE alone would accept a trailing newline
    "a\x00b",
    "ｃlicks",  # fullwidth c
    "сlicks",  # Cyrillic es
    "\u212aey",  # Kelvin sign: lower() would turn it into "k"
    "clicks\u200b",  # zero-width space
    "é",
]


def test_pattern_is_the_documented_one() -> None:
    assert SLUG_RE.pattern == r"^[a-z0-9_]+$"


@pytest.mark.parametrize("slug", ["a", "click_tracker", "store_factory", "x1", "0", "_"])
def test_valid_slugs_are_returned_unchanged(slug: str) -> None:
    assert validate_slug(slug) == slug
    assert validate_collection_base_name(slug) == slug


@pytest.mark.parametrize("slug", BAD_NAMES)
def test_invalid_slug_raises_value_error_naming_it(slug: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        validate_slug(slug)
    assert repr(slug) in str(excinfo.value)
    assert "slug" in str(excinfo.value)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_collection_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="collection name"):
        validate_collection_base_name(name)


@pytest.mark.parametrize("value", [None, 1, b"abc", ["abc"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="must be a str"):
        validate_slug(value)


def test_length_limit() -> None:
    validate_slug("a" * MAX_SLUG_LENGTH)
    with pytest.raises(ValueError, match="longer than"):
        validate_slug("a" * (MAX_SLUG_LENGTH + 1))


def test_physical_name_validates_both_parts() -> None:
    assert physical_collection_name("store", "items") == "store_items"
    with pytest.raises(ValueError):
        physical_collection_name("store", "../items")
    with pytest.raises(ValueError):
        physical_collection_name("Store", "items")


def test_owner_is_the_longest_registered_slug() -> None:
    slugs = ["store", "store_factory", "click_tracker"]
    assert owner_of("store_items", slugs) == "store"
    assert owner_of("store_factory_x", slugs) == "store_factory"
    assert owner_of("store_factory_x", list(reversed(slugs))) == "store_factory"
    assert owner_of("click_tracker_clicks", slugs) == "click_tracker"
    # Without the longer slug registered, the name is store's own (base "factory_x").
    assert owner_of("store_factory_x", ["store"]) == "store"


@pytest.mark.parametrize(
    "name",
    ["store", "store_", "storex_items", "stor_items", "store_../x", "store_Items", "users"],
)
def test_names_without_an_exact_owner(name: str) -> None:
    assert owner_of(name, ["store", "stor_e"]) is None


def test_owner_of_validates_the_registry() -> None:
    with pytest.raises(ValueError):
        owner_of("a_b", ["../a"])
