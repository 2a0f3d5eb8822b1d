"""The demo's in-process transport: a broker in memory, delivering as ActiveMQ does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from fastmon.testing.waiting import holds_for, wait_until
from fastmon.transport.base import BrokerUnreachable, Delivery, Outgoing
from fastmon.transport.inprocess import InProcessBroker, InProcessTransport


class Received:
    """An ``on_delivery`` that keeps what it is handed."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    def bodies(self) -> list[bytes]:
        return [delivery.body for delivery in self.deliveries]


@pytest.fixture
def transport() -> Iterator[tuple[InProcessTransport, Received]]:
    received = Received()
    transport = InProcessTransport(on_delivery=received, broker=InProcessBroker())
    yield transport, received
    transport.disconnect()


def test_messages_wait_for_their_subscriber_and_arrive_in_order_with_broker_headers(
    transport: tuple[InProcessTransport, Received],
) -> None:
    transport, received = transport
    transport.broker.publish("/topic/epictopic", '{"n": 1}')
    transport.connect()
    transport.send([Outgoing("/topic/epictopic", '{"n": 2}', {"persistent": "true"}),
                    Outgoing("/topic/other", '{"n": 3}')])  # fmt: skip
    transport.subscribe(["/topic/epictopic"])
    wait_until(lambda: len(received.deliveries) == 2, 5, "two deliveries")
    assert received.bodies() == [b'{"n": 1}', b'{"n": 2}']
    first, second = received.deliveries
    assert first.generation == second.generation == transport.generation
    assert first.headers["destination"] == "/topic/epictopic"
    assert first.headers["subscription"] == "1"
    assert first.headers["message-id"] != second.headers["message-id"]
    assert abs(int(first.headers["timestamp"]) / 1000 - time.time()) < 5
    assert second.headers["persistent"] == "true"
    assert transport.ack(received.deliveries) == 2
    assert transport.ack(received.deliveries) == 0  # acked once


def test_prefetch_bounds_unacked_frames(
    transport: tuple[InProcessTransport, Received], settings: Any
) -> None:
    settings.FASTMON = {**settings.FASTMON, "PREFETCH": 3}
    transport, received = transport
    for n in range(5):
        transport.broker.publish("/queue/q", str(n))
    transport.connect()
    transport.subscribe(["/queue/q"])
    wait_until(lambda: len(received.deliveries) == 3, 5, "three deliveries")
    holds_for(lambda: len(received.deliveries) == 3, 0.3, "three deliveries and no more")
    transport.ack(received.deliveries[:2])
    wait_until(lambda: len(received.deliveries) == 5, 5, "the other two")
    assert received.bodies() == [b"0", b"1", b"2", b"3", b"4"]


def test_unacked_frames_are_redelivered_after_a_reconnect(
    transport: tuple[InProcessTransport, Received],
) -> None:
    transport, received = transport
    for n in range(3):
        transport.broker.publish("/topic/t", str(n))
    transport.connect()
    transport.subscribe(["/topic/t"])
    wait_until(lambda: len(received.deliveries) == 3, 5, "three deliveries")
    transport.ack(received.deliveries[:1])
    old = list(received.deliveries)
    received.deliveries.clear()
    transport.connect()  # a new connection: what was not acked comes again, first in line
    transport.broker.publish("/topic/t", "3")
    transport.subscribe(["/topic/t"])
    wait_until(lambda: len(received.deliveries) == 3, 5, "redelivery")
    assert received.bodies() == [b"1", b"2", b"3"]
    assert transport.ack(old) == 0  # frames of the old connection are not acked
    assert transport.ack(received.deliveries) == 3


def test_a_full_destination_refuses_after_the_timeout_and_a_disconnected_one_refuses_sends() -> (
    None
):
    broker = InProcessBroker(capacity=1)
    broker.publish("/queue/q", "1")
    with pytest.raises(BrokerUnreachable, match="full"):
        broker.publish("/queue/q", "2", timeout=0.05)
    with pytest.raises(BrokerUnreachable):
        InProcessTransport(broker=broker).send([Outgoing("/queue/q", "3")])
