"""Wire compatibility through the real broker: testbed bodies sent over ActiveMQ STOMP,
received with client-individual ack, ingested, then acked."""

from __future__ import annotations

import queue
import time

import pytest
import stomp

from fastmon.models import DeadLetter, Run, StfFile
from fastmon.services import InboundMessage, Outcome, ingest_batch
from fastmon.testing.messages import RUN_ORDER, example_body
from tests.conftest import broker_login

pytestmark = pytest.mark.django_db


class Collect(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.frames: queue.Queue[stomp.utils.Frame] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self.frames.put(frame)


def receive(frames: queue.Queue, count: int, timeout: float = 10.0) -> list:
    deadline, received = time.monotonic() + timeout, []
    while len(received) < count and time.monotonic() < deadline:
        try:
            received.append(frames.get(timeout=0.2))
        except queue.Empty:
            continue
    return received


def test_testbed_messages_over_activemq_are_ingested_then_acked(
    stomp_address: tuple[str, int], stomp_connection: stomp.Connection, unique_topic: str
) -> None:
    consumer = stomp.Connection([stomp_address], auto_decode=False)
    listener = Collect()
    consumer.set_listener("collect", listener)
    consumer.connect(*broker_login(), wait=True, headers={"client-id": "fastmon-test-consumer"})
    consumer.subscribe(unique_topic, id="1", ack="client-individual", headers={"receipt": "sub"})
    # A topic keeps nothing for a subscription the broker has not registered yet.
    assert listener.receipts.get(timeout=10) == "sub"
    try:
        for name in RUN_ORDER:
            stomp_connection.send(unique_topic, example_body(name),
                                  content_type="application/json")  # fmt: skip
        frames = receive(listener.frames, len(RUN_ORDER))
        assert len(frames) == len(RUN_ORDER), "the broker did not deliver every message"
        assert all(isinstance(f.body, bytes) for f in frames)

        batch = ingest_batch(InboundMessage(f.body, f.headers) for f in frames)
        for frame in frames:
            consumer.ack(frame.headers["message-id"], frame.headers["subscription"])
    finally:
        consumer.disconnect()

    assert batch.counts == {Outcome.STORED: 7, Outcome.DEAD_LETTERED: 1, Outcome.IGNORED: 1}
    assert Run.objects.get().total_stf_files == 42
    assert StfFile.objects.count() == 2
    letter = DeadLetter.objects.get()
    assert letter.destination == unique_topic
    assert letter.headers["message-id"].startswith("ID:")
