"""Subscribers' rules: what a registration may say, and which TF samples each subscriber gets.

Pure logic (pydantic, settings; no database), shared by the REST API and the STOMP control
destination, so both accept and refuse the same requests with the same words. A sample goes to a
subscriber when every filter it sets matches and the sample's *share* (a hash of its TF file
name, in [0, 1)) falls below the subscriber's fraction: the same sample always goes to the same
subscribers, and a subscriber at 0.2 gets every sample one at 0.1 gets, and more.

Control requests (JSON bodies on ``CONTROL_DESTINATION``, answered on their ``reply-to``)::

    {"msg_type": "subscribe", "name": "fp-monitor", "destination": "/queue/fastmon.fp",
     "filters": {"run_numbers": [101], "namespaces": ["epic"], "kinds": ["tf_file_registered"],
                 "states": ["physics"], "substates": ["running"]},
     "fraction": 0.1, "idle_expiry_s": 3600}
    {"msg_type": "unsubscribe", "name": "fp-monitor"}

A ``subscribe`` for a name that exists replaces its settings and renews its lease. No subscriber
and no reply may use a destination fastmon itself uses (``own_destinations``): that would fill
it with copies and replies.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fastmon.conf import DEFAULTS, fastmon_settings

# What fastmon publishes, hence what a subscriber may ask for.
PUBLISHED_KINDS = ("tf_file_registered",)

Name = Annotated[str, Field(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9][\w.:@-]*$")]
Label = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
# After its /queue/-style prefix, a destination is one plain name: no "," (ActiveMQ sends to
# each part of a composite destination), no wildcards, nothing the database cannot store.
_DESTINATION_NAME = re.compile(r"[\w.:@-]+")
MAX_DESTINATION = 255  # OutboxMessage.destination
MAX_LEASE_S = 10 * 365 * 86400.0
# Where a requester's reply-to points: a broker-made temporary destination.
TEMPORARY_PREFIXES = ("/temp-queue/", "/remote-temp-queue/", "/temp-topic/")


class RequestError(ValueError):
    """A registration that cannot be accepted; ``errors`` maps each field to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


def filter_values_problem(filters: Mapping[str, Any]) -> str | None:
    """What is wrong with the size of these filters (raw or stored), or None."""
    count = sum(len(values) for values in filters.values() if isinstance(values, list))
    if count and count > (limit := fastmon_settings.SUBSCRIBER_MAX_FILTER_VALUES):
        return (
            f"at most {limit} values in all its lists (SUBSCRIBER_MAX_FILTER_VALUES), not {count}"
        )
    return None


class Filters(BaseModel):
    """Each list left empty matches everything; a sample must match every list that is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_numbers: list[Annotated[int, Field(ge=0)]] = []
    namespaces: list[Label] = []
    kinds: list[Literal[PUBLISHED_KINDS]] = []  # type: ignore[valid-type]
    states: list[Label] = []
    substates: list[Label] = []

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        """Before any value is read: every sample is matched against every list, and every
        subscriber list page shows them all."""
        if isinstance(data, Mapping) and (problem := filter_values_problem(data)):
            raise ValueError(problem)
        return data


class Subscription(BaseModel):
    """A ``subscribe`` request, or the writable fields of a subscriber over REST."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    destination: str
    filters: Filters = Filters()
    fraction: float = Field(default=1.0, ge=0, le=1)
    active: bool = True
    # Omitted: the SUBSCRIBER_IDLE_EXPIRY_S default; null: never lapses.
    idle_expiry_s: float | None = Field(default=None, gt=0, le=MAX_LEASE_S)

    @field_validator("destination")
    @classmethod
    def _allowed(cls, value: str) -> str:
        return check_destination(value)

    def lease_seconds(self) -> float | None:
        if "idle_expiry_s" in self.model_fields_set:
            return self.idle_expiry_s
        return fastmon_settings.SUBSCRIBER_IDLE_EXPIRY_S

    def stored_filters(self) -> dict[str, list[Any]]:
        """Only the lists that are set: what the routing reads and the API shows."""
        return self.filters.model_dump(exclude_defaults=True)


class Unsubscription(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name


def own_destinations() -> set[str]:
    """Every destination fastmon's settings name: each ``*_DESTINATION`` and ``*_DESTINATIONS``
    (what it reads, publishes, alarms on and takes requests on), a setting added later too."""
    own: set[str] = set()
    for key in DEFAULTS:
        if key.endswith(("_DESTINATION", "_DESTINATIONS")):
            value = getattr(fastmon_settings, key)
            own.update([value] if isinstance(value, str) else value or [])
    return own


def check_destination(destination: str, own: Collection[str] | None = None) -> str:
    """Refuse what fastmon must never send subscribers' copies to: anything outside the
    allowed prefixes, and its own destinations (a loop, or copies where they do not belong;
    ``own``: ``own_destinations()``, when the caller has it already)."""
    prefixes = tuple(fastmon_settings.SUBSCRIBER_DESTINATION_PREFIXES)
    allowed = destination.startswith(prefixes) and destination not in prefixes
    if allowed or destination.startswith("/"):  # a bare name not allowed: the prefix is news
        _not_own(destination, own_destinations() if own is None else own)
    if not allowed:
        raise ValueError(
            f"destination {destination!r} is not allowed; it must start with one of: "
            + ", ".join(prefixes)
        )
    return _plain(destination)


def _not_own(destination: str, own: Collection[str]) -> None:
    """Compared by name, whatever the prefix: a broker may map /queue/x, /topic/x and a temporary
    x onto one address (Artemis does), and none of them is the requester's to use."""
    name = _name(destination)
    mine = sorted(each for each in own if _name(each) == name)
    if mine:
        named = "" if mine == [destination] else f" ({', '.join(mine)} by name)"
        raise ValueError(f"{destination} is one of fastmon's own destinations{named}")


def _name(destination: str) -> str:
    return destination.split("/", 2)[-1] if destination.startswith("/") else destination


def _plain(destination: str) -> str:
    name = destination.split("/", 2)[-1]
    if len(destination) > MAX_DESTINATION or not _DESTINATION_NAME.fullmatch(name):
        raise ValueError(
            f"destination {destination[:80]!r} must be one name of letters, digits and . _ - : @"
            f" after its prefix, at most {MAX_DESTINATION} characters"
        )
    return destination


def validation_errors(error: ValidationError) -> dict[str, str]:
    """pydantic's errors as ``{"filters.kinds.0": "..."}``, the shape both entry points return."""
    errors: dict[str, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        message = "this field is required" if item["type"] == "missing" else item["msg"]
        errors[field] = message.removeprefix("Value error, ")
    return errors


def parse_subscription(data: Mapping[str, Any]) -> Subscription:
    try:
        return Subscription.model_validate(data)
    except ValidationError as exc:
        raise RequestError(validation_errors(exc)) from None


def parse_control_request(data: Mapping[str, Any]) -> Subscription | Unsubscription:
    """A decoded control message as a request, or ``RequestError`` saying what is wrong."""
    fields = {key: value for key, value in data.items() if key != "msg_type"}
    match data.get("msg_type"):
        case "subscribe":
            return parse_subscription(fields)
        case "unsubscribe":
            try:
                return Unsubscription.model_validate(fields)
            except ValidationError as exc:
                raise RequestError(validation_errors(exc)) from None
        case other:
            raise RequestError({"msg_type": f"must be 'subscribe' or 'unsubscribe', not {other!r}"})


def check_reply_to(destination: str) -> str:
    """Where control replies may go: a temporary queue (what a requester's ``reply-to`` names)
    or a destination a subscriber could use; never one of fastmon's own."""
    if destination.startswith(TEMPORARY_PREFIXES):
        _not_own(destination, own_destinations())
        return _plain(destination)
    return check_destination(destination)


def stored_problem(
    destination: str, filters: Mapping[str, Any], own: Collection[str] | None = None
) -> str | None:
    """Why a subscriber stored earlier (before these rules, or before a setting changed) may not
    be routed to now, or None (``own`` as ``check_destination`` takes it)."""
    try:
        check_destination(destination, own)
    except ValueError as exc:
        return str(exc)
    problem = filter_values_problem(filters)
    return f"filters: {problem}" if problem else None


# -- routing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleFacts:
    """What the filters look at, for one outgoing message about one TF sample."""

    kind: str
    tf_filename: str
    run_number: int | None
    namespace: str
    state: str
    substate: str

    @cached_property
    def share(self) -> float:
        """Computed once per sample, however many subscribers look at it."""
        return share(self.tf_filename)


def share(tf_filename: str) -> float:
    """A stable number in [0, 1) for a TF file name (the same in every process and release)."""
    digest = hashlib.blake2b(tf_filename.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


def selects(filters: Mapping[str, list[Any]], fraction: float, facts: SampleFacts) -> bool:
    """Whether a subscriber with these stored filters and fraction gets this sample."""
    wanted = {
        "run_numbers": facts.run_number,
        "namespaces": facts.namespace,
        "kinds": facts.kind,
        "states": facts.state,
        "substates": facts.substate,
    }
    for key, value in wanted.items():
        allowed = filters.get(key)
        if allowed and value not in allowed:
            return False
    return facts.share < fraction
