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
