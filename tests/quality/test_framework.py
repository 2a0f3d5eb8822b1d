"""What a check is: the framework refuses a configuration it cannot run; the worst of several
verdicts."""

from __future__ import annotations

import pytest

from fastmon.quality.framework import configured_checks
from fastmon.quality.verdicts import Quality, worst


def test_the_framework_refuses_what_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="no parameter 'max_silence'"):
        configured_checks([{"class": "fastmon.quality.builtin.StfAbsence", "max_silence": 3}])
    with pytest.raises(ValueError, match="'awful'"):
        configured_checks([{"class": "fastmon.quality.builtin.StfAbsence", "quality": "awful"}])
    twice = [{"class": "fastmon.quality.builtin.StfAbsence"}] * 2
    with pytest.raises(ValueError, match="same name"):
        configured_checks(twice)
    named = configured_checks([*twice[:1], {**twice[0], "name": "Stall", "max_silence_s": 5}])
    assert [c.name for c in named] == ["StfAbsence", "Stall"]
    assert worst([]) is Quality.NULL and worst(["good", "bad", "medium"]) is Quality.BAD
