"""STF announcements through the real broker and run_fastmon: the broker's headers are input too,
so a forged ``timestamp`` outside the sane window is dropped (and said so), never stored, and
the site's pages and lists still answer in a time zone far from UTC; what an STF keeps of an
announcement's other fields, and what a list serves of them, is bounded."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
import stomp
from django.test import override_settings
from rest_framework.test import APIClient

from fastmon.inbound.bounds import CUT, json_size
from fastmon.models import StfFile
from fastmon.testing.messages import stf_body, stf_name
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

RUN = 100210
# The first and the last millisecond Python's calendar holds, as a forged header names them.
YEAR_1, YEAR_9999 = "-62135596800000", "253402300799999"


@pytest.mark.django_db(transaction=True)
def test_a_forged_broker_timestamp_is_dropped_and_every_page_answers_in_any_time_zone(
    start_process: Callable[..., ServiceProcess],
    stomp_connection: stomp.Connection,
    unique_topic: str,
) -> None:
    consumer = start_process(consumer_settings(unique_topic, DURABLE_SUBSCRIPTION=False))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    for sequence, stamp in [(1, YEAR_1), (2, YEAR_9999), (3, None)]:
        headers = {"persistent": "true", **({"timestamp": stamp} if stamp else {})}
        stomp_connection.send(unique_topic, stf_body("stf_ready", RUN, sequence), headers=headers)
    wait_until(lambda: StfFile.objects.count() == 3, 20, "three STFs stored",
               context=consumer.output)  # fmt: skip

    stamps = dict(StfFile.objects.values_list("sequence", "broker_at"))
    assert stamps[1] is None and stamps[2] is None
    assert stamps[3] is not None  # the broker's own stamp, now
    consumer.wait_for_log(f"header timestamp={YEAR_9999!r}")
    assert f"header timestamp={YEAR_1!r}" in consumer.output()

    client = APIClient()
    # West of UTC year 1 falls before the calendar; east of it year 9999 after.
    for zone in ("America/New_York", "Asia/Tokyo"):
        with override_settings(TIME_ZONE=zone):
            listed = client.get("/fastmon/api/stf-files/", {"run_number": RUN})
            assert listed.status_code == 200, listed.content[:300]
            assert len(listed.json()["results"]) == 3
            csv = client.get("/fastmon/api/stf-files/", {"run_number": RUN, "format": "csv"})
            assert csv.status_code == 200, csv.content[:300]
            one = client.get(f"/fastmon/api/stf-files/{stf_name(RUN, 1)}/")
            assert one.status_code == 200, one.content[:300]
            page = client.get(f"/fastmon/runs/{RUN}/")
            assert page.status_code == 200
            assert client.get(f"/fastmon/stf/{stf_name(RUN, 2)}/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_an_announcements_other_fields_are_kept_and_listed_bounded(
    start_process: Callable[..., ServiceProcess],
    publish: Callable[[str, Iterable[str]], None],
    unique_topic: str,
) -> None:
    """A mebibyte of fields fastmon does not know is cut to STORED_JSON_MAX_BYTES, the cut said
    in the STF's metadata; a list serves each STF's to LISTED_JSON_MAX_BYTES."""
    consumer = start_process(consumer_settings(unique_topic, DURABLE_SUBSCRIPTION=False))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    offsets = list(range(0, 2_000_000_000, 2_000_000))  # 1000 TFs' offsets: 11 KB, kept
    publish(unique_topic, [
        stf_body("stf_gen", RUN, 1, note="x" * 1_000_000),
        stf_body("stf_ready", RUN, 1, tf_offsets=offsets),
    ])  # fmt: skip
    wait_until(lambda: StfFile.objects.filter(status="ready").exists(), 20, "the STF ready",
               context=consumer.output)  # fmt: skip

    metadata = StfFile.objects.get().metadata
    assert "note" not in metadata["stf_gen"]
    cut = metadata["stf_gen"][CUT]
    assert (cut["left_out"], cut["keys"]) == (1, ["note"]) and cut["bytes"] > 1_000_000
    assert metadata["stf_gen"]["sender"] == "workflow_runner-agent-daq-7"
    assert metadata["stf_ready"]["tf_offsets"] == offsets
    assert json_size(metadata) < 64 * 1024

    client = APIClient()
    listed = client.get("/fastmon/api/stf-files/", {"run_number": RUN})
    assert len(listed.content) < 10_000
    [row] = listed.json()["results"]
    assert row["metadata"]["stf_ready"][CUT]["keys"] == ["tf_offsets"]
    assert row["metadata"]["stf_gen"] == metadata["stf_gen"]
    csv = client.get("/fastmon/api/stf-files/", {"run_number": RUN, "format": "csv"})
    assert csv.status_code == 200 and len(csv.content) < 10_000
    one = client.get(f"/fastmon/api/stf-files/{stf_name(RUN, 1)}/").json()
    assert one["metadata"] == metadata
