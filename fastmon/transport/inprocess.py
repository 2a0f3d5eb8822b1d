"""A broker in this process's memory, and a transport to it: the demo's stand-in for ActiveMQ.

``InProcessTransport`` has the interface the consumer and the outbox relay use of
``StompTransport`` (``connect``, ``subscribe``, ``ack``, ``send``, ``generation``, deliveries
handed to ``on_delivery`` from a thread of its own), so ``FASTMON["TRANSPORT"] =
"fastmon.transport.inprocess.InProcessTransport"`` runs the same consumer on no broker at all.

Every transport of the process shares one ``InProcessBroker`` (``BROKER``). A destination is a
bounded FIFO: messages wait there until a subscriber takes them, as on a queue or a durable
subscription, and several subscribers of one destination compete for its messages (a topic does
not fan out). A subscription has at most PREFETCH frames unacked; frames still unacked when
their transport disconnects go back to the front of their destination and are delivered again,
as a broker redelivers. Nothing outlives the process.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fastmon.conf import fastmon_settings
from fastmon.transport.base import BatchAnswer, BrokerUnreachable, Delivery, Outgoing

# How often a delivery thread looks up from an empty destination to see if it should stop.
POLL_S = 0.1
# Messages a destination holds; past this, senders wait (flow control) and then give up.
CAPACITY = 100_000


@dataclass(frozen=True)
class Message:
    number: int  # the order messages were published in, across destinations
    body: bytes
    headers: Mapping[str, str]


class Destination:
    """One topic or queue: a bounded, thread-safe FIFO."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self._messages: deque[Message] = deque()
        self._changed = threading.Condition()

    def __len__(self) -> int:
        with self._changed:
            return len(self._messages)

    def put(self, message: Message, timeout: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) < self.capacity, timeout):
                raise BrokerUnreachable(f"{self.name} is full ({self.capacity} messages)")
            self._messages.append(message)
            self._changed.notify_all()

    def put_back(self, messages: Sequence[Message]) -> None:
        """Unacked messages of a lost subscriber, first in line again (past the capacity: they
        were already counted in it once)."""
        with self._changed:
            self._messages.extendleft(sorted(messages, key=lambda m: m.number, reverse=True))
            self._changed.notify_all()

    def take(self, timeout: float) -> Message | None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._messages, timeout):
                return None
            message = self._messages.popleft()
            self._changed.notify_all()
            return message


class InProcessBroker:
    """Named destinations, created on first use."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._destinations: dict[str, Destination] = {}
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def destination(self, name: str) -> Destination:
        with self._lock:
            if name not in self._destinations:
                self._destinations[name] = Destination(name, self.capacity)
            return self._destinations[name]

    def publish(
        self,
        destination: str,
        body: str | bytes,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Queue one message, stamped with the headers a STOMP broker adds."""
        with self._lock:
            number = next(self._numbers)
        stamped = {
            **(headers or {}),
            "destination": destination,
            "message-id": f"ID:inprocess-{number}",
            "timestamp": str(int(time.time() * 1000)),
        }
        data = body.encode() if isinstance(body, str) else body
        self.destination(destination).put(Message(number, data, stamped), timeout)


BROKER = InProcessBroker()


@dataclass
class _Subscription:
    id: str
    destination: Destination
    credit: threading.Semaphore  # PREFETCH: frames this subscription may have unacked
    stopped: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class InProcessTransport:
    """``StompTransport``'s interface on ``BROKER``; see the module's docstring."""

    def __init__(
        self,
        on_delivery: Callable[[Delivery], None] | None = None,
        durable: bool = False,
        broker: InProcessBroker | None = None,
    ) -> None:
        """``durable`` is accepted for the interface: every destination here keeps messages."""
        self.on_delivery = on_delivery
        self.broker = broker or BROKER
        self.generation = 0
        self._connected = False
        self._subscriptions: list[_Subscription] = []
        self._unacked: dict[str, tuple[_Subscription, Message]] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "in-process (this process's memory, no network)"

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, timeout: float = 10.0) -> None:
        self.disconnect()
        self.generation += 1
        self._connected = True

    def subscribe(
        self, destinations: Sequence[str], timeout: float = 10.0, durable: bool | None = None
    ) -> None:
        """``durable`` is accepted for the interface: every destination here keeps messages."""
        if not self._connected:
            raise BrokerUnreachable("not connected to the in-process broker")
        for number, name in enumerate(destinations, len(self._subscriptions) + 1):
            subscription = _Subscription(
                str(number),
                self.broker.destination(name),
                threading.Semaphore(fastmon_settings.PREFETCH),
            )
            subscription.thread = threading.Thread(
                target=self._deliver, args=(subscription, self.generation),
                name=f"fastmon-inprocess-{name}", daemon=True,
            )  # fmt: skip
            self._subscriptions.append(subscription)
            subscription.thread.start()

    def _deliver(self, subscription: _Subscription, generation: int) -> None:
        """The receiver thread, as stomp.py's: take a message once a frame may be in flight."""
        while not subscription.stopped.is_set():
            if not subscription.credit.acquire(timeout=POLL_S):
                continue
            message = subscription.destination.take(POLL_S)
            if message is None:
                subscription.credit.release()
                continue
            with self._lock:
                self._unacked[message.headers["message-id"]] = (subscription, message)
            if self.on_delivery:
                headers = {**message.headers, "subscription": subscription.id}
                self.on_delivery(Delivery(message.body, headers, generation))

    def ack(self, deliveries: Sequence[Delivery]) -> int:
        """Forget acked frames and free their prefetch; frames of an older connection are
        skipped (they were put back when it ended)."""
        acked = 0
        with self._lock:
            for delivery in deliveries:
                if delivery.generation != self.generation:
                    continue
                entry = self._unacked.pop(delivery.headers["message-id"], None)
                if entry is not None:
                    entry[0].credit.release()
                    acked += 1
        return acked

    def send(self, messages: Sequence[Outgoing], timeout: float = 10.0) -> None:
        """Publish in order; once this returns, subscribers can take them."""
        if not self._connected:
            raise BrokerUnreachable("not connected to the in-process broker")
        for message in messages:
            self.broker.publish(message.destination, message.body, message.headers, timeout)

    def send_batches(
        self, batches: Sequence[Sequence[Outgoing]], timeout: float = 10.0
    ) -> list[BatchAnswer]:
        """As StompTransport's: ``True`` per batch published, ``None`` once disconnected."""
        answers: list[BatchAnswer] = []
        for batch in batches:
            try:
                self.send(batch, timeout)
                answers.append(True)
            except BrokerUnreachable:
                answers.append(None)
        return answers

    def disconnect(self) -> None:
        """Stop delivering, then put every unacked frame back for redelivery."""
        self._connected = False
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.stopped.set()
        for subscription in subscriptions:
            assert subscription.thread is not None
            subscription.thread.join()
        with self._lock:
            unacked, self._unacked = list(self._unacked.values()), {}
        for subscription in subscriptions:
            subscription.destination.put_back(
                [message for owner, message in unacked if owner is subscription]
            )
