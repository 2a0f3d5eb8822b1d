"""The testbed's broker over STOMP, behind the interface ``base`` describes.

``StompTransport`` speaks STOMP (stomp.py) to ActiveMQ Classic or Artemis. Its listener runs on
stomp.py's receiver thread and only hands frames over: it never blocks, never reconnects and
never touches the database. Reconnecting is the caller's job (a supervisor loop): each
``connect()`` makes a fresh stomp.py connection and a new ``generation``, so an ack for a frame
of an older connection is dropped (the broker redelivers that frame) instead of sent on the
wrong connection.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import stomp
from stomp.exception import StompException

from fastmon.conf import fastmon_settings
from fastmon.transport.base import (
    BatchAnswer,
    BrokerAuthFailed,
    BrokerRefused,
    BrokerUnreachable,
    Delivery,
    Outgoing,
    durable_subscription_name,
    is_durable,
)

logger = logging.getLogger("fastmon.broker")


_AUTH_WORDS = ("password", "authenticat", "credential", "not authorized", "login")
# ActiveMQ refuses a second connection under one client-id: "Client: X already connected from
# tcp://host:port" (javax.jms.InvalidClientIDException).
_CLIENT_ID_TAKEN_WORDS = ("already connected", "invalidclientid")
_CONNECTED_FROM = re.compile(r"already connected from (\S+)")


def _ack_frame(headers: Mapping[str, str]) -> bytes | None:
    """A STOMP 1.1 ACK frame for one MESSAGE frame's headers, header values escaped; None for a
    frame without the two headers an ACK names (no ACK can reach it), and the log says so."""

    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")

    message_id, subscription = headers.get("message-id"), headers.get("subscription")
    if not message_id or not subscription:
        logger.warning("a frame on %s has no message-id or subscription header: not acked",
                       headers.get("destination", "?"))  # fmt: skip
        return None
    return (f"ACK\nmessage-id:{escaped(message_id)}\nsubscription:{escaped(subscription)}"
            "\n\n\x00").encode()  # fmt: skip


class _Listener(stomp.ConnectionListener):
    """Runs on stomp.py's receiver thread: record and hand over, nothing more."""

    def __init__(self, transport: StompTransport, generation: int) -> None:
        self.transport = transport
        self.generation = generation
        self.error: str | None = None
        self.refused: dict[str, str] = {}
        self.receipts: set[str] = set()
        self.changed = threading.Condition()
        # Until connected, connect() raises what an ERROR says: its caller logs it, once.
        self.connecting = True

    def on_message(self, frame: stomp.utils.Frame) -> None:
        if self.transport.on_delivery:
            self.transport.on_delivery(Delivery(frame.body, frame.headers, self.generation))

    def on_error(self, frame: stomp.utils.Frame) -> None:
        message = frame.headers.get("message", "")
        detail = next(iter(_text(frame.body).strip().splitlines()), "")
        if detail not in message:  # ActiveMQ's header names the object, its body the problem
            message = f"{message}: {detail}" if message else detail
        logger.log(logging.DEBUG if self.connecting else logging.ERROR, "broker error: %s", message)
        with self.changed:
            # ActiveMQ answers a refused frame that asked for a receipt with an ERROR carrying
            # its receipt-id, and keeps the connection: that refusal belongs to that frame.
            if receipt := frame.headers.get("receipt-id"):
                self.refused[receipt] = message
            else:
                self.error = message
            self.changed.notify_all()

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        with self.changed:
            self.receipts.add(frame.headers.get("receipt-id", ""))
            self.changed.notify_all()

    def on_connected(self, frame: stomp.utils.Frame) -> None:
        with self.changed:
            self.changed.notify_all()

    def on_disconnected(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def on_heartbeat_timeout(self) -> None:
        logger.warning("broker heart-beat timed out")

    def forget_refusal(self) -> None:
        """An earlier refusal says nothing about the frames sent next."""
        with self.changed:
            self.error = None

    def wait_for(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready`` or an ERROR frame arrives."""
        with self.changed:
            return self.changed.wait_for(lambda: ready() or self.error is not None, timeout)

    def wait_for_answers(
        self, receipts: Sequence[str], connection: stomp.Connection, timeout: float
    ) -> None:
        """Wait until the broker has answered each receipt (a RECEIPT, or an ERROR naming it)
        or the connection is gone."""
        with self.changed:
            self.changed.wait_for(
                lambda: (
                    all(r in self.receipts or r in self.refused for r in receipts)
                    or not connection.is_connected()
                ),
                timeout,
            )


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


class StompTransport:
    """fastmon's connection to the testbed's STOMP broker, configured from ``FASTMON``."""

    def __init__(
        self, on_delivery: Callable[[Delivery], None] | None = None, durable: bool = False
    ) -> None:
        """``durable``: the connection holds durable subscriptions, so its client-id must be
        the stable AGENT_NAME (one such connection at a time, as the broker requires); other
        connections (relays, queue consumers, tasks) get one of their own beside it."""
        self.on_delivery = on_delivery
        self.hosts: list[tuple[str, int]] = [(h, int(p)) for h, p in fastmon_settings.BROKER_HOSTS]
        agent = fastmon_settings.AGENT_NAME
        self.client_id: str = agent if durable else f"{agent}.{socket.gethostname()}.{os.getpid()}"
        self.generation = 0
        self._connection: stomp.Connection | None = None
        self._listener: _Listener | None = None
        self._receipt_counter = 0

    def describe(self) -> str:
        hosts = ", ".join(f"{h}:{p}" for h, p in self.hosts)
        tls = " (TLS)" if fastmon_settings.BROKER_USE_SSL else ""
        user = fastmon_settings.BROKER_USER or "anonymous"
        return f"stomp://{hosts}{tls} as {user}, client-id {self.client_id}"

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.is_connected()

    def connect(self, timeout: float = 10.0) -> None:
        """Open a fresh connection, trying each host in turn; raise a ``BrokerError`` if none."""
        self.disconnect()
        self.generation += 1
        # stomp.py opens its socket with no deadline: a host that drops packets silently would
        # block here for ever. Try each host first, with one.
        hosts = [host for host in self.hosts if _accepts(host, timeout)]
        if not hosts:
            raise BrokerUnreachable(f"no broker at {self.describe()} answered within {timeout}s")
        connection = stomp.Connection(
            hosts,
            heartbeats=tuple(fastmon_settings.BROKER_HEARTBEATS),
            reconnect_attempts_max=1,
            auto_decode=False,
            heart_beat_receive_scale=2.0,
        )
        if fastmon_settings.BROKER_USE_SSL:
            connection.set_ssl(
                for_hosts=self.hosts,
                key_file=fastmon_settings.BROKER_SSL_KEY_FILE,
                cert_file=fastmon_settings.BROKER_SSL_CERT_FILE,
                ca_certs=fastmon_settings.BROKER_SSL_CA_CERTS,
            )
        listener = _Listener(self, self.generation)
        connection.set_listener("fastmon", listener)
        try:
            connection.connect(
                fastmon_settings.BROKER_USER,
                fastmon_settings.BROKER_PASSWORD,
                wait=False,
                headers={"client-id": self.client_id},
            )
        except (StompException, OSError) as exc:
            raise BrokerUnreachable(f"no broker at {self.describe()}: {exc}") from None
        # stomp.py's own wait has no deadline; a port that accepts but never answers must not hang.
        if not listener.wait_for(connection.is_connected, timeout) or listener.error:
            error = listener.error
            _quietly_disconnect(connection)
            if error and any(word in error.lower() for word in _AUTH_WORDS):
                raise BrokerAuthFailed(f"the broker refused the login: {error}")
            if error and any(word in error.lower() for word in _CLIENT_ID_TAKEN_WORDS):
                raise BrokerRefused(self._client_id_taken(error))
            if error:
                raise BrokerRefused(f"the broker refused the connection: {error}")
            raise BrokerUnreachable(f"no answer from the broker at {self.describe()}")
        listener.connecting = False
        self._connection, self._listener = connection, listener
        host, port = connection.transport.current_host_and_port
        logger.info("connected to %s:%s as client-id %s", host, port, self.client_id)

    def _client_id_taken(self, error: str) -> str:
        """One line for an operator: the broker holds a connection under this client-id (at
        start fatal, exit code 6; on a reconnect, a lost connection of ours the broker has not
        dropped yet, retried)."""
        where = _CONNECTED_FROM.search(error)
        whose = "AGENT_NAME" if self.client_id == fastmon_settings.AGENT_NAME else "client-id"
        return (f"{whose} {self.client_id!r} is in use: the broker already has a connection "
                f"under this client-id{f' (from {where[1]})' if where else ''}; is another "
                "run_fastmon running with this AGENT_NAME? Give each its own")  # fmt: skip

    def subscribe(
        self, destinations: Sequence[str], timeout: float = 10.0, durable: bool | None = None
    ) -> None:
        """Subscribe with client-individual ack; topics durably unless configured otherwise
        (``durable=False``: never, for a listener that keeps nothing across restarts)."""
        connection, listener = self._require_connection()
        for number, destination in enumerate(destinations, 1):
            listener.forget_refusal()
            headers = {"activemq.prefetchSize": str(fastmon_settings.PREFETCH)}
            if is_durable(destination) if durable is None else durable:
                name = durable_subscription_name(destination)
                headers["activemq.subscriptionName"] = name  # ActiveMQ Classic
                headers["durable-subscription-name"] = name  # Artemis

            def subscribe_one(
                receipt: str, d: str = destination, n: int = number, h: dict[str, str] = headers
            ) -> Any:
                return connection.subscribe(
                    d, id=str(n), ack="client-individual", headers={**h, "receipt": receipt}
                )

            self._send_confirmed(subscribe_one, timeout, f"subscription to {destination}")
            logger.info("subscribed to %s", destination)

    def ack(self, deliveries: Sequence[Delivery]) -> int:
        """Ack frames after their commit; return how many were acked. Frames of an older
        connection, or of one lost meanwhile, are skipped: the broker redelivers them."""
        if not self.connected:
            return 0
        assert self._connection is not None
        # One write for the whole batch, each frame still acking one message
        # (client-individual): stomp.py's ack() writes one frame per call.
        frames = [
            frame
            for delivery in deliveries
            if delivery.generation == self.generation
            and (frame := _ack_frame(delivery.headers)) is not None
        ]
        if not frames:
            return 0
        try:
            self._connection.transport.send(b"".join(frames))
        except (StompException, OSError):
            return 0
        return len(frames)

    def send(self, messages: Sequence[Outgoing], timeout: float = 10.0) -> None:
        """Send messages, persistent and in order; return once the broker has them all."""
        if not messages:
            return
        [answer] = self.send_batches([messages], timeout)
        if isinstance(answer, str):
            raise BrokerRefused(answer)
        if answer is None:
            raise BrokerUnreachable(f"no receipt from the broker for {len(messages)} messages")

    def send_batches(
        self, batches: Sequence[Sequence[Outgoing]], timeout: float = 10.0
    ) -> list[BatchAnswer]:
        """Send batches in order, each confirmed by a receipt of its own, and wait for all the
        answers at once: ``True`` for a batch the broker took, its refusal (a sentence) for one
        it refused, ``None`` when the connection failed before its answer came.

        A receipt on a batch's last frame covers the batch: the broker handles a connection's
        frames in order, and ActiveMQ's refusals are per destination (authorisation, a vanished
        temporary queue), so a batch should hold one destination. Its ERRORs for frames without
        a receipt arrive in no particular order and cannot be told apart; a broker that closes
        the connection with its ERROR (Artemis) stopped at the first batch left unanswered.
        """
        connection, listener = self._require_connection()
        listener.forget_refusal()
        receipts: list[str] = []
        try:
            for batch in batches:
                *rest, last = batch
                for message in rest:
                    connection.send(message.destination, message.body, headers=_publish(message))
                receipts.append(self._next_receipt())
                headers = {**_publish(last), "receipt": receipts[-1]}
                connection.send(last.destination, last.body, headers=headers)
        except (StompException, OSError) as exc:
            logger.warning("connection lost while sending: %s", exc)
        listener.wait_for_answers(receipts, connection, timeout)
        answers: list[BatchAnswer] = []
        closing_error = None if connection.is_connected() else listener.error
        for batch, receipt in zip(batches, receipts, strict=False):
            where = batch[-1].destination
            if (refusal := listener.refused.pop(receipt, None)) is not None:
                answers.append(f"the broker refused the send to {where}: {refusal}")
            elif receipt in listener.receipts:
                listener.receipts.discard(receipt)
                answers.append(True)
            elif closing_error:
                answers.append(f"the broker refused the send to {where} and closed the "
                               f"connection: {closing_error}")  # fmt: skip
                closing_error = None  # the batches after it were never looked at
            else:
                answers.append(None)
        return answers + [None] * (len(batches) - len(answers))

    def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            _quietly_disconnect(connection)

    def _require_connection(self) -> tuple[stomp.Connection, _Listener]:
        if not self.connected or self._listener is None:
            raise BrokerUnreachable("not connected to the broker")
        assert self._connection is not None
        return self._connection, self._listener

    def _next_receipt(self) -> str:
        self._receipt_counter += 1
        return f"fastmon-{self.generation}-{self._receipt_counter}"

    def _send_confirmed(self, send: Callable[[str], Any], timeout: float, what: str) -> None:
        connection, listener = self._require_connection()
        receipt = self._next_receipt()
        try:
            send(receipt)
        except (StompException, OSError) as exc:
            raise BrokerUnreachable(f"connection lost during {what}: {exc}") from None
        listener.wait_for_answers([receipt], connection, timeout)
        if (refusal := listener.refused.pop(receipt, None) or listener.error) is not None:
            raise BrokerRefused(f"the broker refused the {what}: {refusal}")
        if receipt not in listener.receipts:
            raise BrokerUnreachable(f"no receipt from the broker for the {what}")
        listener.receipts.discard(receipt)


def _accepts(host: tuple[str, int], timeout: float) -> bool:
    try:
        socket.create_connection(host, timeout=timeout).close()
    except OSError:
        return False
    return True


def _publish(message: Outgoing) -> dict[str, str]:
    return {"persistent": "true", "content-type": "application/json", **message.headers}


def _quietly_disconnect(connection: stomp.Connection, timeout: float = 3.0) -> None:
    """DISCONNECT and wait (bounded) for the broker's receipt, so frames already written (acks)
    are handled; then close the socket whatever happened. stomp.py's own wait has no deadline."""
    try:
        connection.disconnect()  # without a receipt argument stomp.py does not block
        deadline = time.monotonic() + timeout
        while connection.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
    except (StompException, OSError):
        pass
    connection.transport.disconnect_socket()
