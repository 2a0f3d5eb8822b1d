"""Wire compatibility through the real broker: testbed bodies sent over ActiveMQ STOMP,
received with client-individual ack, ingested, then acked."""

from __future__ import annotations

import pytest
import stomp

from fastmon.inbound.messages import InboundMessage, Outcome
from fastmon.ingest.pipeline import ingest_batch
from fastmon.models import DeadLetter, Run, StfFile
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import RUN_ORDER, example_body

pytestmark = pytest.mark.django_db


def test_testbed_messages_over_activemq_are_ingested_then_acked(
    stomp_address: tuple[str, int], stomp_connection: stomp.Connection, unique_topic: str
) -> None:
    with subscribed(stomp_address, broker_login(), unique_topic, ack="client-individual",
                    client_id="fastmon-test-consumer") as (consumer, collector):  # fmt: skip
        for name in RUN_ORDER:
            stomp_connection.send(unique_topic, example_body(name),
                                  content_type="application/json")  # fmt: skip
        frames = collector.frames_received(len(RUN_ORDER))
        assert len(frames) == len(RUN_ORDER), "the broker did not deliver every message"
        assert all(isinstance(f.body, bytes) for f in frames)

        batch = ingest_batch(InboundMessage(f.body, f.headers) for f in frames)
        for frame in frames:
            consumer.ack(frame.headers["message-id"], frame.headers["subscription"])

    assert batch.counts == {Outcome.STORED: 7, Outcome.DEAD_LETTERED: 1, Outcome.IGNORED: 1}
    assert Run.objects.get().total_stf_files == 42
    assert StfFile.objects.count() == 2
    letter = DeadLetter.objects.get()
    assert letter.destination == unique_topic
    assert letter.headers["message-id"].startswith("ID:")
