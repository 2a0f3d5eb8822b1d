"""Alarms a shifter acknowledges: an end-of-run verdict raised and cleared in one commit stays in
``fastmon_quality_alarms_active`` and shows "cleared, unacknowledged" until a person
acknowledges it over the API (a login; who and when kept, the first acknowledgement stays)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from fastmon.inbound.messages import InboundMessage
from fastmon.ingest.pipeline import ingest_batch
from fastmon.models import Alarm, LiveEvent
from fastmon.testing.messages import example

pytestmark = pytest.mark.django_db

API = "/fastmon/api"
RUN = 100470
GAUGE = 'fastmon_quality_alarms_active{check="EndRunTotal",quality="bad",run="100470"}'


@pytest.fixture
def ended_wrong() -> Alarm:
    """A run ended with a total it never announced: EndRunTotal raises and clears at once."""
    checks = [{"class": "fastmon.quality.builtin.EndRunTotal"}]
    with override_settings(FASTMON={**settings.FASTMON, "CHECKS": checks, "CHECK_GRACE_S": 0}):
        ingest_batch(InboundMessage(json.dumps(body)) for body in [
            example("start_run", run_id=RUN), example("end_run", run_id=RUN, total_stf_files=3),
        ])  # fmt: skip
    return Alarm.objects.get(run__run_number=RUN)


def gauge(client: APIClient) -> str | None:
    """The gauge's sample of the run's alarm, or None when it has none."""
    for line in client.get("/fastmon/metrics/").content.decode().splitlines():
        if line.startswith(GAUGE):
            return line.removeprefix(GAUGE).strip()
    return None


def test_an_alarm_raised_and_cleared_at_once_stays_until_a_person_acknowledges_it(
    ended_wrong: Alarm,
) -> None:
    anonymous, shifter = APIClient(), APIClient()
    shifter.force_authenticate(User.objects.create_user("shifter"))
    assert ended_wrong.cleared_at is not None
    row = anonymous.get(f"{API}/alarms/{ended_wrong.pk}/").json()
    assert (row["state"], row["acknowledged_at"], row["acknowledged_by"]) == (
        "cleared, unacknowledged", None, "")  # fmt: skip
    assert gauge(anonymous) == "1.0"
    unseen = anonymous.get(f"{API}/alarms/", {"unacknowledged": "true"}).json()["results"]
    assert [a["id"] for a in unseen] == [ended_wrong.pk]

    assert anonymous.post(f"{API}/alarms/{ended_wrong.pk}/acknowledge/").status_code in (401, 403)
    assert shifter.post(f"{API}/alarms/999999/acknowledge/").status_code == 404
    answer = shifter.post(f"{API}/alarms/{ended_wrong.pk}/acknowledge/")
    assert answer.status_code == 200
    seen = answer.json()
    assert (seen["state"], seen["acknowledged_by"]) == ("acknowledged", "shifter")
    assert seen["acknowledged_at"] is not None
    assert gauge(anonymous) is None
    assert anonymous.get(f"{API}/alarms/", {"unacknowledged": "true"}).json()["results"] == []
    [told] = LiveEvent.objects.filter(kind="alarm", payload__action="acknowledge")
    assert told.run_number == RUN
    assert told.payload["message"] == "EndRunTotal: acknowledged by shifter"

    # Again, by another: the first acknowledgement stays, and the pages are not told twice.
    other = APIClient()
    other.force_authenticate(User.objects.create_user("other"))
    again = other.post(f"{API}/alarms/{ended_wrong.pk}/acknowledge/").json()
    assert (again["acknowledged_by"], again["acknowledged_at"]) == (
        "shifter", seen["acknowledged_at"])  # fmt: skip
    assert LiveEvent.objects.filter(kind="alarm", payload__action="acknowledge").count() == 1


def test_an_open_alarm_is_active_and_counted_once_per_run_and_check(ended_wrong: Alarm) -> None:
    """Open, it is "active"; with one cleared unacknowledged beside it, the gauge counts 2."""
    Alarm.objects.create(
        run=ended_wrong.run, check_name="EndRunTotal", quality="bad", reason="again",
        raised_at=ended_wrong.raised_at,
    )  # fmt: skip
    client = APIClient()
    states = [
        a["state"] for a in client.get(f"{API}/alarms/", {"run_number": RUN}).json()["results"]
    ]
    assert sorted(states) == ["active", "cleared, unacknowledged"]
    assert gauge(client) == "2.0"
