"""A STOMP test client for sites testing fastmon against a real broker: publish, subscribe,
collect what arrives. Every wait has a deadline."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import stomp

from fastmon.conf import fastmon_settings

Address = tuple[str, int]
Login = tuple[str | None, str | None]


def broker_login() -> Login:
    """The login the site's own fastmon uses (``BROKER_USER``, ``BROKER_PASSWORD``)."""
    return fastmon_settings.BROKER_USER, fastmon_settings.BROKER_PASSWORD


class Collector(stomp.ConnectionListener):
    """The MESSAGE frames and receipts one connection receives."""

    def __init__(self) -> None:
        self.frames: queue.Queue[stomp.utils.Frame] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self.frames.put(frame)

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def wait_for_receipt(self, receipt: str, timeout: float = 10.0) -> None:
        if self.receipts.get(timeout=timeout) != receipt:
            raise AssertionError(f"expected receipt {receipt!r}")

    def frames_received(
        self, expected: int, timeout: float = 15.0, settle: float = 0.5
    ) -> list[stomp.utils.Frame]:
        """Wait for ``expected`` frames, then ``settle`` seconds more for any extra one."""
        received: list[stomp.utils.Frame] = []
        deadline = time.monotonic() + timeout
        while (wait := deadline - time.monotonic() if len(received) < expected else settle) > 0:
            try:
                received.append(self.frames.get(timeout=wait))
            except queue.Empty:
                break
        return received

    def json_bodies(self, expected: int, **waits: float) -> list[dict]:
        return [json.loads(frame.body) for frame in self.frames_received(expected, **waits)]


@contextmanager
def subscribed(
    address: Address,
    login: Login,
    destination: str,
    *,
    client_id: str | None = None,
    headers: dict[str, str] | None = None,
    ack: str = "auto",
) -> Iterator[tuple[stomp.Connection, Collector]]:
    """A connection subscribed to ``destination`` (the broker has confirmed it), closed after."""
    connection = stomp.Connection([address], auto_decode=False)
    collector = Collector()
    connection.set_listener("collector", collector)
    connect_headers = {"client-id": client_id} if client_id else {}
    connection.connect(*login, wait=True, headers=connect_headers)
    connection.subscribe(destination, id="1", ack=ack,
                         headers={**(headers or {}), "receipt": "subscribed"})  # fmt: skip
    # A topic keeps nothing for a subscription the broker has not registered yet.
    collector.wait_for_receipt("subscribed")
    try:
        yield connection, collector
    finally:
        connection.disconnect()


def publish(address: Address, login: Login, destination: str, bodies: Iterable[str]) -> None:
    """Persistent sends, in order, returning once the broker has confirmed the last one."""
    bodies = list(bodies)
    connection = stomp.Connection([address])
    collector = Collector()
    connection.set_listener("collector", collector)
    connection.connect(*login, wait=True)
    for number, body in enumerate(bodies, 1):
        headers = {"persistent": "true"}
        if number == len(bodies):
            headers["receipt"] = "published"
        connection.send(destination, body, headers=headers)
    if bodies:
        collector.wait_for_receipt("published", timeout=30)
    connection.disconnect()
