"""The system check: a typo in ``FASTMON`` is caught at start, not by a silent default."""

from __future__ import annotations

from django.core.checks import run_checks
from django.test import override_settings


def test_the_system_check_flags_unknown_keys_and_a_non_dict() -> None:
    with override_settings(FASTMON={"NAMESPCE": "x"}):
        assert [m.id for m in run_checks() if m.id.startswith("fastmon")] == ["fastmon.W001"]
    with override_settings(FASTMON=["NAMESPACE"]):
        assert [m.id for m in run_checks() if m.id.startswith("fastmon")] == ["fastmon.E001"]
    with override_settings(FASTMON={"NAMESPACE": "x"}):
        assert not [m for m in run_checks() if m.id.startswith("fastmon")]


def test_the_system_check_refuses_a_detector_map_with_overlapping_sources() -> None:
    overlapping = [
        {"name": "BEMC", "sources": [300, 323], "channels": 512},
        {"name": "EEMC", "sources": [320, 340], "channels": 512},
    ]
    with override_settings(FASTMON={"DETECTORS": overlapping}):
        [error] = [m for m in run_checks() if m.id.startswith("fastmon")]
    assert error.id == "fastmon.E002" and "BEMC" in error.msg and "EEMC" in error.msg
    with override_settings(FASTMON={"DETECTORS": overlapping[:1]}):
        assert not [m for m in run_checks() if m.id.startswith("fastmon")]
