"""Content checks against PostgreSQL: run X made BEMC's reference, run Y with BEMC's ADC
scaled by 1.3 merged by the content loop; Y's BEMC adc comparison is bad, its other histograms
good, X compared with itself good, and the API serves the results per detector."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from fastmon.content.detectors import detector_map
from fastmon.content.references import choose_reference
from fastmon.models import Alarm, CheckState, Run
from fastmon.quality.evaluate import on_content
from fastmon.testing.content import filled_content as content
from fastmon.testing.content import merged

pytestmark = pytest.mark.django_db

X, Y = 101993, 101994


def comparison(run: Run) -> CheckState:
    return CheckState.objects.get(run=run, check_name="ReferenceComparison")


def test_a_scaled_adc_is_bad_against_the_reference_and_the_rest_good() -> None:
    x = merged(X, content())
    assert comparison(x).quality == "null" and "no reference" in comparison(x).reason
    choose_reference("BEMC", x, by="shifter")
    y = merged(Y, content(adc_scale=1.3))

    state = comparison(y)
    assert state.quality == "bad" and state.reason.startswith("BEMC/adc: chi2/ndf")
    by_histogram = state.memory["detectors"]["BEMC"]["histograms"]
    assert by_histogram["BEMC/adc"]["quality"] == "bad"
    others = {name: r["quality"] for name, r in by_histogram.items() if name != "BEMC/adc"}
    assert others == {"BEMC/bx": "good", "BEMC/hits_per_tf": "good", "BEMC/occupancy": "good"}
    assert state.memory["detectors"]["SVT"] == {"quality": "null", "reason": "SVT: no reference"}
    assert Alarm.objects.filter(run=y, check_name="ReferenceComparison").exists()

    on_content([x.pk])  # X against itself
    assert comparison(x).quality == "good"

    found = APIClient().get(f"/fastmon/api/runs/{Y}/content/").json()["quality"]
    assert found["BEMC"]["ReferenceComparison"]["histograms"]["BEMC/adc"]["quality"] == "bad"
    assert found["BEMC"]["CorruptTFs"]["quality"] == "good"
    assert set(found) == {d.name for d in detector_map()}


def test_a_later_cycle_of_the_reference_run_does_not_move_it() -> None:
    x = merged(X, content())
    choose_reference("BEMC", x)
    merged(X, content(adc_scale=1.3), sequence=2)  # X's whole: no longer its reference's shape
    assert comparison(x).quality == "bad"
