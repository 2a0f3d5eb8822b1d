"""The admin: a changed sampling policy is saved as a new version; subscribers keep the rules."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from fastmon.models import SamplingPolicy, Subscriber

pytestmark = pytest.mark.django_db


def test_editing_a_policy_in_the_admin_saves_a_new_version(client) -> None:
    client.force_login(User.objects.create_superuser("crew", "crew@example.org", "pw"))
    v1 = SamplingPolicy.objects.create(name="testbed")
    response = client.post(
        f"/admin/fastmon/samplingpolicy/{v1.pk}/change/",
        {"name": "testbed", "description": "fewer TFs", "params": '{"fraction": 0.05}',
         "namespace": "", "run_type": "", "active": "on"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    versions = list(SamplingPolicy.objects.order_by("version").values_list(
        "version", "params", "created_by"))  # fmt: skip
    assert versions == [(1, {}, ""), (2, {"fraction": 0.05}, "crew")]


def test_a_policy_with_bad_parameters_is_refused_in_the_form(client) -> None:
    client.force_login(User.objects.create_superuser("crew", "crew@example.org", "pw"))
    response = client.post(
        "/admin/fastmon/samplingpolicy/add/",
        {"name": "x", "params": '{"fraction": 7}', "namespace": "", "run_type": "", "active": "on"},
    )
    assert response.status_code == 200
    assert "fraction must be above 0 and at most 1" in response.content.decode()
    assert not SamplingPolicy.objects.exists()


def test_subscribers_edited_in_the_admin_follow_the_subscription_rules(client) -> None:
    client.force_login(User.objects.create_superuser("crew", "crew@example.org", "pw"))
    form = {"name": "fp", "destination": "/queue/elsewhere", "filters": "{}", "fraction": "0.5",
            "active": "on", "idle_expiry_s": "60"}  # fmt: skip
    refused = client.post("/admin/fastmon/subscriber/add/", form)
    assert refused.status_code == 200
    assert "must start with one of" in refused.content.decode()

    saved = client.post(
        "/admin/fastmon/subscriber/add/", {**form, "destination": "/queue/fastmon.fp"}
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    subscriber = Subscriber.objects.get()
    assert (subscriber.created_by, subscriber.fraction, subscriber.idle_expiry_s) == (
        "crew",
        0.5,
        60,
    )
    assert subscriber.expires_at is not None


def test_alarms_and_quality_flags_are_listed_read_only(client) -> None:
    from fastmon.models import Alarm, Run

    client.force_login(User.objects.create_superuser("crew", "crew@example.org", "pw"))
    run = Run.objects.create(run_number=100330)
    alarm = Alarm.objects.create(run=run, check_name="StfSequence", quality="bad",
                                 reason="1 missing", raised_at="2026-12-06T10:00:00Z")  # fmt: skip
    listed = client.get("/admin/fastmon/alarm/")
    assert listed.status_code == 200 and "1 missing" in listed.content.decode()
    assert client.get("/admin/fastmon/qualityflag/").status_code == 200
    edit = client.post(f"/admin/fastmon/alarm/{alarm.pk}/change/", {"reason": "x"})
    assert edit.status_code == 403
    assert client.get("/admin/fastmon/alarm/add/").status_code == 403


def test_a_reference_is_made_by_choosing_a_run_and_a_detector_then_read_only(client) -> None:
    from fastmon.models import ContentReference, Run
    from fastmon.testing.content import filled_content, merged

    client.force_login(User.objects.create_superuser("crew", "crew@example.org", "pw"))
    run = merged(101993, filled_content())
    empty = Run.objects.create(run_number=101994)
    refused = client.post("/admin/fastmon/contentreference/add/",
                          {"detector": "BEMC", "run": empty.pk})  # fmt: skip
    assert "run 101994 has no BEMC content yet" in refused.content.decode()
    added = client.post("/admin/fastmon/contentreference/add/", {"detector": "BEMC", "run": run.pk})
    assert added.status_code == 302, added.content.decode()[:2000]
    reference = ContentReference.objects.get()
    assert (reference.detector, reference.run_id, reference.chosen_by) == ("BEMC", run.pk, "crew")
    page = client.get(f"/admin/fastmon/contentreference/{reference.pk}/change/").content.decode()
    assert "BEMC/occupancy" in page and 'name="detector"' not in page
