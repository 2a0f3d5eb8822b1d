"""TF samples, their tf_file_registered announcements through the outbox, and the relay."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import OutboxMessage, StfFile, TfSample
from fastmon.outbox.relay import RELAY_LOCK, outbox_lag, relay_outbox
from fastmon.sampling.policy import TfRange
from fastmon.sampling.samples import SamplePlan, record_tf_samples
from fastmon.statistics.read import run_statistics
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import example, example_body
from fastmon.transport.stomp import StompTransport

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = example("tf_file_registered")


@pytest.fixture
def listen(stomp_address: tuple[str, int], unique_topic: str):
    """A subscriber on the topic fastmon publishes to in these tests."""
    changes = {"PUBLISH_DESTINATION": unique_topic, "AGENT_NAME": "fastmon-agent-daq-12"}
    with (
        subscribed(stomp_address, broker_login(), unique_topic) as (_, collector),
        override_settings(FASTMON={**settings.FASTMON, **changes}),
    ):
        yield collector


@pytest.fixture
def stf() -> StfFile:
    ingest_message(example_body("run_imminent"))
    ingest_message(example_body("stf_gen"))
    return StfFile.objects.select_related("run").get()


def connected_transport() -> StompTransport:
    transport = StompTransport()
    transport.connect()
    return transport


def test_samples_and_their_announcements_are_stored_together_and_only_once(stf) -> None:
    ranges = [TfRange(37, 58, file_size_bytes=46137344), TfRange(160, 181)]
    first = record_tf_samples([SamplePlan(stf, ranges)])
    again = record_tf_samples([SamplePlan(stf, ranges)])

    assert [s.tf_filename for s in first] == [
        "swf.101993.000001_tf_001.tf", "swf.101993.000001_tf_002.tf",
    ]  # fmt: skip
    assert again == []
    assert TfSample.objects.count() == 2
    assert OutboxMessage.objects.count() == 2
    assert [s.tf_count for s in first] == [22, 22]


def test_a_range_outside_the_stf_is_refused(stf) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.999"):
        record_tf_samples([SamplePlan(stf, [TfRange(990, 1000)])])
    assert not TfSample.objects.exists() and not OutboxMessage.objects.exists()


def test_tf_file_registered_on_the_wire_matches_the_spec_field_by_field(listen, stf) -> None:
    record_tf_samples([SamplePlan(stf, [TfRange(37, 58, file_size_bytes=46137344)])])
    transport = connected_transport()
    assert relay_outbox(transport) == 1
    transport.disconnect()

    [body] = listen.json_bodies(1)
    assert set(body) == set(SPEC)
    assert "agent_name" not in body
    sample = TfSample.objects.get()
    for field in ["msg_type", "namespace", "run_id", "execution_id", "processed_by", "sender",
                  "tf_filename", "tf_first", "tf_last", "tf_count", "file_size_bytes",
                  "stf_filename", "status"]:  # fmt: skip
        assert body[field] == SPEC[field], field
        assert type(body[field]) is type(SPEC[field]), field
    assert body["tf_file_id"] == str(sample.tf_file_id)
    assert len(body["timestamp"]) == len(SPEC["timestamp"])
    assert OutboxMessage.objects.get().sent_at is not None
    sample.refresh_from_db()
    assert sample.published_at == OutboxMessage.objects.get().sent_at
    published = run_statistics(sample.run)["latency_seconds"]["sampled_to_published"]
    assert published["count"] == 1
    exact = (sample.published_at - sample.created_at).total_seconds()
    assert published["p50"] == pytest.approx(exact, rel=0.045)


def test_nothing_is_published_for_a_rolled_back_transaction(listen, stf) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        record_tf_samples([SamplePlan(stf, [TfRange(0, 9)])])
        raise RuntimeError("the rest of the work failed")
    record_tf_samples([SamplePlan(stf, [TfRange(37, 58)])])
    transport = connected_transport()
    relay_outbox(transport)
    transport.disconnect()

    assert [b["tf_first"] for b in listen.json_bodies(1)] == [37]
    assert TfSample.objects.count() == 1


def test_messages_wait_while_the_broker_is_away_then_go_out_in_order(listen, stf) -> None:
    record_tf_samples([SamplePlan(stf, [TfRange(n * 100, n * 100 + 9) for n in range(5)])])
    assert relay_outbox(StompTransport()) == 0  # never connected: nothing leaves
    assert outbox_lag()[0] == 5

    transport = connected_transport()
    assert relay_outbox(transport, limit=2) == 2
    assert relay_outbox(transport) == 3
    transport.disconnect()
    assert [b["tf_first"] for b in listen.json_bodies(5)] == [0, 100, 200, 300, 400]
    assert outbox_lag() == (0, None)


def test_a_relay_finding_another_at_work_skips_its_round_instead_of_waiting(listen, stf) -> None:
    record_tf_samples([SamplePlan(stf, [TfRange(0, 9), TfRange(10, 19)])])
    holding, release = threading.Event(), threading.Event()

    def other_relay() -> None:
        """Another process's relay in the middle of its round: holding the relay lock."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RELAY_LOCK])
            holding.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_relay)
    thread.start()
    transport = connected_transport()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        assert relay_outbox(transport) == 0
        assert time.monotonic() - started < 2  # did not wait for the lock
    finally:
        release.set()
        thread.join()
    assert relay_outbox(transport) == 2
    transport.disconnect()
    assert len(listen.json_bodies(2)) == 2


def test_the_relay_runs_on_its_own_as_a_command(listen, stf, start_process, unique_topic) -> None:
    record_tf_samples([SamplePlan(stf, [TfRange(n * 10, n * 10 + 4) for n in range(20)])])
    relay = start_process({"PUBLISH_DESTINATION": unique_topic}, command="fastmon_relay")
    bodies = listen.json_bodies(20)
    relay.signal(signal.SIGTERM)
    assert relay.wait(timeout=15) == 0
    assert [b["tf_first"] for b in bodies] == [n * 10 for n in range(20)]
    assert "subscribing to nothing" in relay.output()
    assert outbox_lag() == (0, None)
