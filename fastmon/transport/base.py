"""What every transport shares with its users (the consumer, the outbox relay, the simulator):
the errors, a delivered frame, an outgoing message, and the rules for destinations. A transport
is chosen by a dotted path in ``FASTMON["TRANSPORT"]``: ``stomp.StompTransport`` (the testbed's
ActiveMQ) or ``inprocess.InProcessTransport`` (the demo)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from fastmon.conf import fastmon_settings


class BrokerError(Exception):
    """The broker could not be used; the subclass says why."""


class BrokerUnreachable(BrokerError):
    """No broker answered at any configured host and port (or the connection was lost)."""


class BrokerAuthFailed(BrokerError):
    """The broker refused fastmon's user name or password."""


class BrokerRefused(BrokerError):
    """The broker answered with an ERROR frame (a destination it refuses, for example)."""


@dataclass(frozen=True)
class Delivery:
    """One MESSAGE frame, tagged with the connection it came on."""

    body: bytes
    headers: Mapping[str, str]
    generation: int
    received_at: float = field(default_factory=time.time)


# What the broker made of a batch sent: taken, refused (why), or no answer (connection lost).
BatchAnswer = bool | str | None


@dataclass(frozen=True)
class Outgoing:
    destination: str
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)


def validate_destination(destination: str) -> None:
    if not destination.startswith(("/topic/", "/queue/")) or destination.endswith("/"):
        raise ValueError(f"destination {destination!r} must be /topic/<name> or /queue/<name>")


def is_durable(destination: str) -> bool:
    """Topics get a durable subscription unless DURABLE_SUBSCRIPTION is off; queues never."""
    return destination.startswith("/topic/") and fastmon_settings.DURABLE_SUBSCRIPTION


def durable_subscription_name(destination: str) -> str:
    """Stable per topic, so a restarted fastmon resumes the same durable subscription."""
    return f"{fastmon_settings.SUBSCRIPTION_NAME}.{destination.removeprefix('/topic/')}"
