"""References over the API: anyone lists them, a login makes and removes them; another POST
for the same detector replaces its reference and says which run it replaced; clear errors."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from fastmon.models import ContentReference, Run
from fastmon.testing.content import filled_content, merged

pytestmark = pytest.mark.django_db

API, X, Y = "/fastmon/api", 101993, 101994


@pytest.fixture
def shifter() -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("shifter", password="pw"))
    return client


def test_a_login_chooses_and_removes_a_reference_anyone_lists_them(shifter: APIClient) -> None:
    merged(X, filled_content())
    merged(Y, filled_content(seed=8))
    choice = {"detector": "BEMC", "run_number": X}
    assert APIClient().post(f"{API}/references/", choice, format="json").status_code in (401, 403)

    made = shifter.post(f"{API}/references/", choice, format="json")
    assert made.status_code == 201, made.content
    found = made.json()
    assert (found["detector"], found["run_number"], found["chosen_by"]) == ("BEMC", X, "shifter")
    assert found["histograms"] == ["BEMC/adc", "BEMC/bx", "BEMC/hits_per_tf", "BEMC/occupancy"]
    assert found["replaced"] is None

    again = shifter.post(f"{API}/references/", {"detector": "BEMC", "run_number": Y})
    assert again.status_code == 201 and again.json()["replaced"] == X
    listed = APIClient().get(f"{API}/references/").json()
    assert [(r["detector"], r["run_number"]) for r in listed] == [("BEMC", Y)]
    assert APIClient().get(f"{API}/references/BEMC/").json()["run_number"] == Y

    assert APIClient().delete(f"{API}/references/BEMC/").status_code in (401, 403)
    assert shifter.delete(f"{API}/references/BEMC/").status_code == 204
    assert not ContentReference.objects.exists()


def test_the_reference_is_a_copy_of_the_run_as_it_was(shifter: APIClient) -> None:
    merged(X, filled_content())
    shifter.post(f"{API}/references/", {"detector": "ZDC", "run_number": X})
    kept = bytes(ContentReference.objects.get().data)
    merged(X, filled_content(seed=9), sequence=2)
    assert bytes(ContentReference.objects.get().data) == kept


def test_clear_errors(shifter: APIClient) -> None:
    merged(X, filled_content())
    Run.objects.create(run_number=Y)  # no content yet
    unknown = shifter.post(f"{API}/references/", {"detector": "HCAL", "run_number": X})
    assert unknown.status_code == 400 and "unknown detector 'HCAL'" in unknown.json()["detail"]
    empty = shifter.post(f"{API}/references/", {"detector": "BEMC", "run_number": Y})
    assert empty.status_code == 400
    assert empty.json()["detail"] == f"run {Y} has no BEMC content yet (not merged)"
    missing = shifter.post(f"{API}/references/", {"detector": "BEMC", "run_number": 5})
    assert missing.status_code == 404
    assert shifter.post(f"{API}/references/", {"detector": "BEMC"}).status_code == 400
