"""A hot channel as the shifter meets it, cycle by cycle through the content loop: good while
clean, bad naming the source and channel once it is hot, an alarm raised, then cleared once the
moving window no longer holds the hot cycles; nothing fires while the run is paused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from fastmon.content.histograms import Content
from fastmon.models import Alarm, CheckState, Run
from fastmon.testing.content import filled_content, merged

pytestmark = pytest.mark.django_db

RUN, SOURCE, CHANNEL = 100960, 305, 11


def cycle(number: int, hot: bool) -> Content:
    """One cycle's content: every detector's usual hits, BEMC's channel hot when ``hot``."""
    made = filled_content(seed=number)
    if hot:
        occupancy = made.histograms["BEMC/occupancy"]
        occupancy[SOURCE - 300, CHANNEL] = occupancy[SOURCE - 300, CHANNEL] + 400
    return made


def hot_state(run: Run) -> CheckState:
    return CheckState.objects.get(run=run, check_name="HotChannels")


@pytest.fixture(autouse=True)
def short_window():
    with override_settings(FASTMON={**settings.FASTMON, "CONTENT_WINDOW_CYCLES": 2}):
        yield


def running(substate: str = "physics") -> Run:
    return Run.objects.create(run_number=RUN, state="run", substate=substate,
                              state_seen_at=timezone.now() - timedelta(minutes=5))  # fmt: skip


def test_a_hot_channel_goes_bad_raises_an_alarm_and_clears_when_the_window_moves_on() -> None:
    run = running()
    merged(RUN, cycle(1, hot=False), sequence=1)
    assert hot_state(run).quality == "good"

    merged(RUN, cycle(2, hot=True), sequence=2)
    state = hot_state(run)
    assert state.quality == "bad"
    assert state.reason.startswith("BEMC") and f"source {SOURCE}" in state.reason
    assert f"channel {CHANNEL}" in state.reason
    alarm = Alarm.objects.get(run=run, check_name="HotChannels")
    assert alarm.cleared_at is None

    for sequence in (3, 4):  # two clean cycles: the window of 2 no longer holds the hot one
        merged(RUN, cycle(sequence, hot=False), sequence=sequence)
    assert hot_state(run).quality == "good"
    alarm.refresh_from_db()
    assert alarm.cleared_at is not None


def test_nothing_fires_while_the_run_is_paused() -> None:
    run = running(substate="paused")
    merged(RUN, cycle(1, hot=True), sequence=1)
    assert not Alarm.objects.filter(run=run).exists()
