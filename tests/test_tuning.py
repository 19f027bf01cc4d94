"""The knob registry and how settings select variants."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from platform_core.settings import Settings
from platform_core.tuning import KNOBS, get_knob, parse_assignments, resolve

REPORT_SECTIONS = {"1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "2.3", "3.1", "3.2", "3.3", "4.1",
                   "4.2", "4.3", "5.1", "5.2", "5.3", "7.1", "7.2", "8.1", "9.1", "10.1"}  # fmt: skip


def test_every_report_section_has_a_knob() -> None:
    covered = {s for knob in KNOBS for s in knob.sections}
    assert REPORT_SECTIONS <= covered
    assert {k.extra_finding for k in KNOBS if k.extra_finding} >= {"6.1", "6.4"}


def test_each_knob_is_well_formed() -> None:
    names = [k.name for k in KNOBS]
    assert len(names) == len(set(names))
    for knob in KNOBS:
        assert len(knob.variants) >= 2 or knob.name == "wrapper_cache"
        assert knob.baseline in knob.variants and knob.default in knob.variants
        assert knob.description and knob.proof


def test_presets_and_overrides() -> None:
    assert resolve("baseline")["config_cache"] == "none"
    assert resolve("optimized")["config_cache"] == "request_ttl_singleflight"
    assert resolve("baseline", {"routes": "replace"})["routes"] == "replace"


def test_settings_select_variants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNING", "baseline")
    monkeypatch.setenv("KNOBS", "driver=pymongo, routes=replace")
    settings = Settings()
    assert settings.knob("config_cache") == "none"
    assert settings.knob("routes") == "replace"
    assert settings.pool_options()["maxPoolSize"] == 100  # the driver default, as before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope=x", "unknown knob 'nope'"),
        ("driver=fast", "no variant 'fast'"),
        ("driver", "KNOB=VARIANT"),
    ],
)
def test_bad_knob_settings_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_assignments(text)
    with pytest.raises(ValidationError, match=message):
        Settings(knobs=text)


def test_unknown_knob_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"valid knobs: .*config_cache"):
        get_knob("config")


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValidationError, match="mongodb://"):
        Settings(mongodb_uri="http://example.com")
    with pytest.raises(ValidationError, match="exceeds"):
        Settings(mongodb_min_pool_size=20, mongodb_max_pool_size=5)
    with pytest.raises(ValidationError, match="invalid database name"):
        Settings(mongodb_db="a/b")
