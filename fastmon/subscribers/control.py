"""Subscribe and unsubscribe requests from CONTROL_DESTINATION, applied in ingest's batch and
answered on their reply-to through the outbox (so the answer leaves only once the change is
committed). A request is at most CONTROL_MAX_BODY_BYTES; one whose reply-to fastmon may not send
to is refused unanswered (a dead letter says why)."""

from __future__ import annotations

from typing import Any

from django.db import DataError, IntegrityError, transaction

from fastmon.conf import fastmon_settings
from fastmon.dead_letters.store import dead_letter
from fastmon.inbound.messages import InboundMessage, MessageResult, Outcome
from fastmon.inbound.schema import MessageError, decode_body
from fastmon.models import DeadLetter, OutboxMessage, Subscriber
from fastmon.outbox.bodies import control_reply_body
from fastmon.subscribers.rules import (
    RequestError,
    Subscription,
    Unsubscription,
    check_reply_to,
    parse_control_request,
)
from fastmon.subscribers.service import remove_subscriber, save_subscriber

_CONTROL_TYPES = {"subscribe", "unsubscribe"}


def apply_control_request(message: InboundMessage) -> MessageResult:
    """Apply one request. A request that cannot be used, or that the database refuses (in a
    savepoint, so the batch goes on), is dead-lettered and its sender told why."""
    data: dict[str, Any] = {}
    reply_to = ""
    try:
        reply_to = _reply_to(message)
        data = decode_body(message.raw_body, fastmon_settings.CONTROL_MAX_BODY_BYTES)
        request = parse_control_request(data)
        with transaction.atomic():
            return _apply(message, reply_to, request)
    except MessageError as exc:
        code, reason, errors = exc.code, exc.reason, {"body": exc.reason}
    except RequestError as exc:
        code, reason, errors = DeadLetter.Reason.INVALID, str(exc), exc.errors
    except (DataError, IntegrityError) as exc:
        code, reason = DeadLetter.Reason.REJECTED, f"the database refused it: {exc}".strip()
        errors = {"body": reason}
    msg_type = data.get("msg_type")  # a string, when decode_body returned
    kind = msg_type if isinstance(msg_type, str) and msg_type in _CONTROL_TYPES else "control"
    _reply(message, reply_to, kind, {"ok": False, "error": reason, "errors": errors})
    return dead_letter(message, code, f"{kind}: {reason}", kind)


def _reply_to(message: InboundMessage) -> str:
    """The request's reply-to ("" for none), or RequestError when fastmon may not send there."""
    reply_to = message.headers.get("reply-to", "")
    if reply_to:
        try:
            check_reply_to(reply_to)
        except ValueError as exc:
            raise RequestError({"reply-to": str(exc)}) from None
    return reply_to


def _apply(
    message: InboundMessage, reply_to: str, request: Subscription | Unsubscription
) -> MessageResult:
    if isinstance(request, Subscription):
        subscriber = save_subscriber(request, by="stomp control")
        _reply(message, reply_to, "subscribe", {"ok": True, "subscriber": _summary(subscriber)})
        return MessageResult(Outcome.STORED, "subscribe", f"subscriber {subscriber.name} saved")
    removed = remove_subscriber(request.name)
    result = {"ok": True, "name": request.name, "removed": removed}
    _reply(message, reply_to, "unsubscribe", result)
    return MessageResult(Outcome.STORED, "unsubscribe", f"subscriber {request.name} removed")


def _summary(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "name": subscriber.name,
        "destination": subscriber.destination,
        "filters": subscriber.filters,
        "fraction": subscriber.fraction,
        "active": subscriber.active,
        "idle_expiry_s": subscriber.idle_expiry_s,
        "expires_at": subscriber.expires_at.isoformat() if subscriber.expires_at else None,
    }


def _reply(message: InboundMessage, reply_to: str, request: str, result: dict[str, Any]) -> None:
    if not reply_to:
        return
    correlation = message.headers.get("correlation-id", "")
    OutboxMessage.objects.create(
        destination=reply_to,
        msg_type=f"{request}_reply",
        subject=correlation[:255],
        body=control_reply_body(request, result),
        headers={"correlation-id": correlation} if correlation else {},
    )
