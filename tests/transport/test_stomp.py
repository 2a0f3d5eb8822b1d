"""The STOMP transport reads the broker's headers as input: a frame its ACK cannot name is left
unacked, and said, instead of failing the batch's acks."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterable
from dataclasses import replace

import pytest

from fastmon.transport.base import Delivery
from fastmon.transport.stomp import StompTransport


def test_a_frame_without_a_message_id_is_not_acked_and_the_others_are(
    stomp_address: tuple[str, int],
    publish: Callable[[str, Iterable[str]], None],
    unique_topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivered: queue.Queue[Delivery] = queue.Queue()
    transport = StompTransport(delivered.put)
    transport.connect()
    try:
        transport.subscribe([unique_topic], durable=False)
        publish(unique_topic, ["{}", "{}"])
        first, second = delivered.get(timeout=10), delivered.get(timeout=10)
        headers = {k: v for k, v in second.headers.items() if k != "message-id"}
        with caplog.at_level(logging.WARNING, "fastmon.broker"):
            assert transport.ack([first, replace(second, headers=headers)]) == 1
    finally:
        transport.disconnect()
    assert f"a frame on {unique_topic} has no message-id or subscription header" in caplog.text
