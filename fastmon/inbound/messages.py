"""What ingest is given (a message as the transport delivered it) and what it answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property

from fastmon.inbound.times import header_time


@dataclass(frozen=True)
class InboundMessage:
    """A message as the transport delivered it: raw body and STOMP headers."""

    body: bytes | str
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: datetime | None = None

    @property
    def destination(self) -> str:
        return self.headers.get("destination", "")

    @property
    def raw_body(self) -> bytes:
        """The bytes as they arrived (a str body is encoded back losslessly)."""
        body = self.body
        return body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)

    @cached_property
    def broker_at(self) -> datetime | None:
        """When the broker took the message (its ``timestamp`` header, in ms), when sane."""
        return header_time(self.headers, "timestamp")


class Outcome(StrEnum):
    STORED = "stored"
    IGNORED = "ignored"  # a msg_type fastmon does not consume
    FILTERED = "filtered"  # another namespace
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class MessageResult:
    outcome: Outcome
    msg_type: str
    detail: str
    dead_letter_id: int | None = None


@dataclass(frozen=True)
class BatchResult:
    """What happened to each message of a batch, in input order."""

    results: list[MessageResult]

    @property
    def counts(self) -> Counter[Outcome]:
        return Counter(result.outcome for result in self.results)

    @property
    def ignored_types(self) -> Counter[str]:
        """Unknown message types seen, by msg_type."""
        return Counter(r.msg_type for r in self.results if r.outcome is Outcome.IGNORED)
