"""The REST API: swf-monitor compatibility, auth, filters, CSV, dead letters, statistics."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import (
    DeadLetter,
    LiveEvent,
    OutboxMessage,
    SamplingPolicy,
    StfFile,
    Subscriber,
    TfSample,
)
from fastmon.sampling.policy import TfRange
from fastmon.sampling.samples import SamplePlan, record_tf_samples
from fastmon.testing.announcing import sampled_run
from fastmon.testing.messages import example, example_body

pytestmark = pytest.mark.django_db

API = "/fastmon/api"
# swf-monitor's FastMonFile fields (docs/wire-formats.md), every one of them.
SWF_MONITOR_FIELDS = {
    "tf_file_id",
    "stf_file",
    "tf_filename",
    "tf_first",
    "tf_last",
    "tf_count",
    "file_size_bytes",
    "checksum",
    "status",
    "metadata",
    "created_at",
    "updated_at",
}


def fastmon(**changes):
    return override_settings(FASTMON={**settings.FASTMON, **changes})


@pytest.fixture
def user() -> User:
    return User.objects.create_user("shifter", password="pw")


@pytest.fixture
def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


def test_fastmon_files_carry_swf_monitors_fields_with_its_meaning(anonymous) -> None:
    sampled_run(1)
    rows = anonymous.get(f"{API}/fastmon-files/").json()
    assert isinstance(rows, list) and len(rows) == 7  # unpaginated without ?limit=
    row = next(r for r in rows if r["tf_filename"] == "swf.101993.000001_tf_001.tf")
    assert set(row) >= SWF_MONITOR_FIELDS
    sample = TfSample.objects.get(tf_filename=row["tf_filename"])
    assert row["tf_file_id"] == str(sample.tf_file_id)
    assert row["stf_file"] == "swf.101993.000001.stf"  # the STF's file name, not an id
    assert row["tf_count"] == row["tf_last"] - row["tf_first"] + 1
    assert row["status"] == "registered"
    assert isinstance(row["file_size_bytes"], int)  # bytes, not a TF count
    assert row["run_number"] == 101993
    detail = anonymous.get(f"{API}/fastmon-files/{sample.tf_file_id}/").json()
    assert detail == row


def test_fastmon_files_paginate_only_when_asked_and_filter_like_swf_monitor(anonymous) -> None:
    sampled_run(2)
    sampled_run(1, run=101994)
    page = anonymous.get(f"{API}/fastmon-files/", {"limit": 5}).json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 21 and len(page["results"]) == 5

    def names(**params) -> set[str]:
        return {r["tf_filename"] for r in anonymous.get(f"{API}/fastmon-files/", params).json()}

    assert names(tf_filename="swf.101993.000002_tf_003.tf") == {"swf.101993.000002_tf_003.tf"}
    assert len(names(stf_filename="swf.101993.000002.stf")) == 7
    assert len(names(run_number=101994)) == 7
    assert len(names(status="registered")) == 21
    assert names(status="done") == set()
    TfSample.objects.filter(tf_filename="swf.101994.000001_tf_001.tf").update(
        created_at="2026-01-01T00:00:00Z"
    )
    assert names(created_before="2026-06-01T00:00:00Z") == {"swf.101994.000001_tf_001.tf"}
    assert len(names(created_after="2026-06-01T00:00:00Z")) == 20


def test_a_whole_list_too_large_to_send_is_refused_with_a_hint(anonymous) -> None:
    sampled_run(1)
    with fastmon(API_MAX_UNPAGINATED=5):
        response = anonymous.get(f"{API}/fastmon-files/")
        assert response.status_code == 400
        assert "add ?limit=" in response.json()[0]
        assert anonymous.get(f"{API}/fastmon-files/", {"limit": 3}).status_code == 200


def test_anonymous_clients_read_but_cannot_write(anonymous) -> None:
    sampled_run(1)
    sample = TfSample.objects.first()
    assert anonymous.get(f"{API}/runs/").status_code == 200
    refused = [
        anonymous.patch(f"{API}/fastmon-files/{sample.tf_file_id}/", {"status": "done"}),
        anonymous.post(f"{API}/subscribers/", {"name": "s", "destination": "/queue/s"}),
        anonymous.post(f"{API}/sampling-policies/", {"name": "p"}, format="json"),
        anonymous.post(f"{API}/dead-letters/1/replay/"),
    ]
    assert [r.status_code for r in refused] == [401, 401, 401, 401]
    assert TfSample.objects.get(pk=sample.pk).status == "registered"


def test_a_downstream_agent_moves_a_sample_along_with_its_token(token_client) -> None:
    sampled_run(1)
    sample = TfSample.objects.get(tf_filename="swf.101993.000001_tf_001.tf")
    stored = (sample.tf_first, sample.tf_last, sample.tf_count)
    response = token_client.patch(
        f"{API}/fastmon-files/{sample.tf_file_id}/",
        {"status": "processing", "tf_first": sample.tf_first + 1},  # a value it does not have
        format="json",
    )
    assert response.status_code == 200
    sample.refresh_from_db()
    assert sample.status == "processing"
    # The TF range is read-only: the tf_first sent is ignored, in the row and in the answer.
    assert (sample.tf_first, sample.tf_last, sample.tf_count) == stored
    assert response.json()["tf_first"] == stored[0]
    bad = token_client.patch(f"{API}/fastmon-files/{sample.tf_file_id}/", {"status": "lost"})
    assert bad.status_code == 400 and "status" in bad.json()


def test_session_login_works_too(user) -> None:
    client = APIClient()
    client.login(username="shifter", password="pw")
    response = client.post(
        f"{API}/subscribers/",
        {"name": "fast-processing", "destination": "/queue/fastmon.fp", "fraction": 0.5},
    )
    assert response.status_code == 201, response.json()
    subscriber = Subscriber.objects.get()
    assert (subscriber.created_by, subscriber.updated_by) == ("shifter", "shifter")


def test_subscribers_are_validated(token_client) -> None:
    response = token_client.post(
        f"{API}/subscribers/", {"name": "x", "destination": "epictopic", "fraction": 2}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"destination", "fraction"}
    # The words the STOMP control destination answers with, too.
    assert "must start with one of: /queue/fastmon." in response.json()["destination"][0]
    response = token_client.post(
        f"{API}/subscribers/",
        {"name": "x", "destination": "/queue/fastmon.x", "filters": {"kinds": ["stf_gen"]}},
        format="json",
    )
    assert response.status_code == 400 and set(response.json()) == {"filters.kinds.0"}


def test_subscribers_are_registered_changed_and_removed_with_their_backlog(token_client) -> None:
    created = token_client.post(
        f"{API}/subscribers/",
        {"name": "fp", "destination": "/queue/fastmon.fp", "filters": {"run_numbers": [101993]},
         "idle_expiry_s": 600},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["filters"] == {"run_numbers": [101993]} and body["expires_at"]
    url = f"{API}/subscribers/{body['id']}/"

    changed = token_client.patch(url, {"fraction": 0.25}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["fraction"], changed.json()["filters"]) == (0.25, body["filters"])
    assert changed.json()["idle_expiry_s"] == 600

    Subscriber.objects.filter(pk=body["id"]).update(fraction=1.0)
    ingest_message(example_body("stf_gen"))
    record_tf_samples([SamplePlan(StfFile.objects.select_related("run").get(), [TfRange(0, 9)])])
    assert OutboxMessage.objects.filter(subscriber_id=body["id"]).count() == 1
    assert token_client.delete(url).status_code == 204
    assert not Subscriber.objects.exists()
    assert OutboxMessage.objects.filter(destination="/queue/fastmon.fp").count() == 0


def test_policies_written_over_the_api_become_new_versions(token_client) -> None:
    created = token_client.post(
        f"{API}/sampling-policies/", {"name": "light", "params": {"fraction": 0.05}}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert (created.json()["version"], created.json()["created_by"]) == (1, "shifter")
    pk = created.json()["id"]
    changed = token_client.patch(
        f"{API}/sampling-policies/{pk}/", {"params": {"fraction": 0.1}}, format="json"
    )
    assert changed.json()["version"] == 2
    assert list(SamplingPolicy.objects.order_by("version").values_list("version", "params")) == [
        (1, {"fraction": 0.05}),
        (2, {"fraction": 0.1}),
    ]
    again = token_client.post(
        f"{API}/sampling-policies/", {"name": "light", "params": {}}, format="json"
    )
    assert again.status_code == 201 and again.json()["version"] == 3
    v2 = token_client.put(
        f"{API}/sampling-policies/{changed.json()['id']}/",
        {"name": "light", "params": {"fraction": 0.2}},
        format="json",
    )
    assert v2.status_code == 200 and v2.json()["version"] == 4
    bad = token_client.post(
        f"{API}/sampling-policies/", {"name": "bad", "params": {"fraction": 3}}, format="json"
    )
    assert bad.status_code == 400 and "fraction" in bad.json()["params"][0]


def test_every_list_exports_csv_with_its_filters(anonymous) -> None:
    sampled_run(2)
    response = anonymous.get(
        f"{API}/fastmon-files/", {"format": "csv", "stf_filename": "swf.101993.000001.stf"}
    )
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 7
    assert {"tf_filename", "stf_file", "file_size_bytes", "metadata.state"} <= set(rows[0])
    for path in ["runs", "stf-files", "dead-letters", "subscribers", "sampling-policies", "events"]:
        exported = anonymous.get(f"{API}/{path}/", {"format": "csv"})
        assert exported.status_code == 200, path
        assert exported["Content-Type"].startswith("text/csv"), path
    stfs = anonymous.get(f"{API}/stf-files/", {"format": "csv", "sequence_min": 2})
    assert [r["stf_filename"] for r in csv.DictReader(io.StringIO(stfs.content.decode()))] == [
        "swf.101993.000002.stf"
    ]


def test_dead_letters_can_be_replayed_once_the_cause_is_fixed_or_discarded(token_client) -> None:
    body = example_body("stf_ready")
    with fastmon(MAX_BODY_BYTES=100):
        too_large = ingest_message(body, {"destination": "/topic/epictopic"}).dead_letter_id
    still_bad = ingest_message(example_body("stf_ready_no_filename")).dead_letter_id

    replayed = token_client.post(f"{API}/dead-letters/{too_large}/replay/")
    assert replayed.status_code == 200 and replayed.json()["outcome"] == "stored"
    letter = DeadLetter.objects.get(pk=too_large)
    assert (letter.status, letter.resolved_by) == ("replayed", "shifter")
    assert StfFile.objects.filter(stf_filename="swf.101993.000001.stf").exists()
    assert token_client.post(f"{API}/dead-letters/{too_large}/replay/").status_code == 409

    again = token_client.post(f"{API}/dead-letters/{still_bad}/replay/")
    assert again.status_code == 422 and "no filename" in again.json()["detail"]
    assert DeadLetter.objects.get(pk=still_bad).occurrences == 2

    assert token_client.post(f"{API}/dead-letters/{still_bad}/discard/").status_code == 200
    assert DeadLetter.objects.get(pk=still_bad).status == "discarded"
    assert token_client.post(f"{API}/dead-letters/{still_bad}/discard/").status_code == 409
    pending = token_client.get(f"{API}/dead-letters/", {"status": "pending"}).json()
    assert pending["results"] == []


def test_huge_bodies_are_kept_in_part_and_left_out_of_lists(anonymous, token_client) -> None:
    bodies = [bytes([ord("a") + n]) * (5 * 1024 * 1024) for n in range(3)]
    ids = [ingest_message(body).dead_letter_id for body in bodies]

    letter = DeadLetter.objects.get(pk=ids[0])
    assert letter.reason_code == "too_large" and letter.body_truncated
    assert letter.body_size == 5 * 1024 * 1024
    assert letter.body_sha256 == hashlib.sha256(bodies[0]).hexdigest()
    assert len(letter.body) == 64 * 1024

    listed = anonymous.get(f"{API}/dead-letters/")
    assert len(listed.content) < 10_000
    assert {"body", "body_encoding"}.isdisjoint(listed.json()["results"][0])
    one = anonymous.get(f"{API}/dead-letters/{ids[0]}/").json()
    assert (len(one["body"]), one["body_truncated"]) == (64 * 1024, True)
    page = anonymous.get("/fastmon/dead-letters/")
    assert len(page.content) < 30_000 and "5.0\xa0MB in all" in page.content.decode()

    refused = token_client.post(f"{API}/dead-letters/{ids[0]}/replay/")
    assert refused.status_code == 409 and "only the start" in refused.json()["detail"]


def test_run_statistics_answer_what_shift_crews_ask(anonymous) -> None:
    sampled_run(4, missing=(3,))
    stats = anonymous.get(f"{API}/runs/101993/statistics/").json()
    assert stats["tf_samples"] == 21
    assert stats["stf_status_counts"] == {"sampled": 3}
    assert 0.10 < stats["achieved_fraction"] < 0.20
    assert stats["average_bytes_per_tf"] == pytest.approx(2147483648 / 1000)
    assert stats["tf_samples_by_state"] == [
        {"state": "run", "substate": "physics", "tf_samples": 21}
    ]
    assert stats["sequence"] == {"first": 1, "last": 4, "missing": [[3, 3]], "duplicated": []}
    latency = stats["latency_seconds"]["received_to_committed"]
    assert latency["count"] == 3 and latency["p50"] >= 0
    assert stats["tf_sample_status_counts"] == {"registered": 21}
    assert anonymous.get(f"{API}/runs/999999/statistics/").status_code == 404


def test_runs_and_stf_files_filter(anonymous) -> None:
    sampled_run(3)
    sampled_run(1, run=101994)
    runs = anonymous.get(f"{API}/runs/", {"run_number": 101994}).json()["results"]
    assert [r["run_number"] for r in runs] == [101994]
    stfs = anonymous.get(
        f"{API}/stf-files/", {"run_number": 101993, "sequence_min": 2, "sequence_max": 3}
    ).json()["results"]
    assert sorted(s["stf_filename"] for s in stfs) == [
        "swf.101993.000002.stf",
        "swf.101993.000003.stf",
    ]
    detail = anonymous.get(f"{API}/stf-files/swf.101993.000002.stf/").json()
    assert detail["status"] == "sampled" and detail["run_number"] == 101993


def test_events_since_a_sequence_number(anonymous) -> None:
    sampled_run(3)
    events = anonymous.get(f"{API}/events/", {"since": 0}).json()
    # The run's creation, each STF announced, then the samples of each STF.
    assert [e["kind"] for e in events] == ["run"] + ["stf"] * 3 + ["tf_samples"] * 3
    first = events[0]["sequence"]
    later = anonymous.get(f"{API}/events/", {"since": first}).json()
    assert [e["sequence"] for e in later] == [e["sequence"] for e in events[1:]]
    assert anonymous.get(f"{API}/events/", {"since": events[-1]["sequence"]}).json() == []
    assert anonymous.get(f"{API}/events/", {"since": "x"}).status_code == 400
    assert LiveEvent.objects.count() == 7


@pytest.mark.parametrize("path", ["fastmon-files", "stf-files", "runs", "dead-letters"])
def test_lists_cost_the_same_few_queries_however_many_rows(
    anonymous, path, django_assert_max_num_queries
) -> None:
    sampled_run(2)
    with django_assert_max_num_queries(4) as few:
        anonymous.get(f"{API}/{path}/", {"limit": 100})
    sampled_run(8, run=101994)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert anonymous.get(f"{API}/{path}/", {"limit": 100}).status_code == 200


def test_the_openapi_schema_and_its_ui_are_served(anonymous) -> None:
    schema = anonymous.get(f"{API}/schema/", {"format": "json"}).json()
    assert schema["openapi"].startswith("3.")
    assert "/fastmon-files/" in schema["paths"]
    assert anonymous.get(f"{API}/docs/").status_code == 200


# -- hardening (#22) ----------------------------------------------------------------------------


def test_a_cursor_paginated_list_takes_limit_too(anonymous) -> None:
    sampled_run(stfs=5)
    rows = anonymous.get(f"{API}/stf-files/", {"limit": 2}).json()["results"]
    assert len(rows) == 2
    assert anonymous.get(f"{API}/stf-files/", {"limit": 0}).status_code == 400


def test_routes_answer_without_their_trailing_slash(anonymous) -> None:
    answer = anonymous.get(f"{API}/events", {"since": 0})
    assert answer.status_code == 200 and isinstance(answer.json(), list)


def test_a_delete_asking_for_csv_has_no_body(token_client) -> None:
    created = token_client.post(f"{API}/subscribers/", {
        "name": "gone", "destination": "/queue/fastmon.gone"}, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    answer = token_client.delete(f"{API}/subscribers/{created.json()['id']}/",
                                 HTTP_ACCEPT="text/csv")  # fmt: skip
    assert answer.status_code == 204 and answer.content == b""


def test_csv_cells_a_spreadsheet_would_run_are_defused(anonymous) -> None:
    for name in ("=HYPERLINK(1)", "@SUM(A1)", "-2+3", "+1"):
        ingest_message(json.dumps(example("stf_gen", filename=name)))
    text = anonymous.get(f"{API}/stf-files/", {"format": "csv"}).content.decode()
    names = {row["stf_filename"] for row in csv.DictReader(io.StringIO(text))}
    assert names == {"'=HYPERLINK(1)", "'@SUM(A1)", "'-2+3", "'+1"}
    # JSON keeps the values as they are.
    assert {r["stf_filename"] for r in anonymous.get(f"{API}/stf-files/").json()["results"]} == {
        "=HYPERLINK(1)", "@SUM(A1)", "-2+3", "+1"}  # fmt: skip
