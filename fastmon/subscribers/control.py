"""Subscribe and unsubscribe requests from CONTROL_DESTINATION, applied in ingest's batch and
answered on their reply-to through the outbox (so the answer leaves only once the change is
committed)."""

from __future__ import annotations

import logging
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

logger = logging.getLogger("fastmon.ingest")

_CONTROL_TYPES = {"subscribe", "unsubscribe"}


def apply_control_request(message: InboundMessage) -> MessageResult:
    """Apply one request. A request that cannot be used, or that the database refuses (in a
    savepoint, so the batch goes on), is dead-lettered and its sender told why."""
    data: dict[str, Any] = {}
    try:
        data = decode_body(message.raw_body, fastmon_settings.MAX_BODY_BYTES)
        request = parse_control_request(data)
        with transaction.atomic():
            return _apply(message, request)
    except MessageError as exc:
        code, reason, errors = exc.code, exc.reason, {"body": exc.reason}
    except RequestError as exc:
        code, reason, errors = DeadLetter.Reason.INVALID, str(exc), exc.errors
    except (DataError, IntegrityError) as exc:
        code, reason = DeadLetter.Reason.REJECTED, f"the database refused it: {exc}".strip()
        errors = {"body": reason}
    msg_type = data.get("msg_type")  # a string, when decode_body returned
    kind = msg_type if isinstance(msg_type, str) and msg_type in _CONTROL_TYPES else "control"
    _reply(message, kind, {"ok": False, "error": reason, "errors": errors})
    return dead_letter(message, code, f"{kind}: {reason}", kind)


def _apply(message: InboundMessage, request: Subscription | Unsubscription) -> MessageResult:
    if isinstance(request, Subscription):
        subscriber = save_subscriber(request, by="stomp control")
        _reply(message, "subscribe", {"ok": True, "subscriber": _summary(subscriber)})
        return MessageResult(Outcome.STORED, "subscribe", f"subscriber {subscriber.name} saved")
    removed = remove_subscriber(request.name)
    _reply(message, "unsubscribe", {"ok": True, "name": request.name, "removed": removed})
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


def _reply(message: InboundMessage, request: str, result: dict[str, Any]) -> None:
    reply_to = message.headers.get("reply-to", "")
    if not reply_to:
        return
    try:
        check_reply_to(reply_to)
    except ValueError as exc:
        logger.warning("control: no reply sent for a %s request: %s", request, exc)
        return
    correlation = message.headers.get("correlation-id", "")
    OutboxMessage.objects.create(
        destination=reply_to,
        msg_type=f"{request}_reply",
        subject=correlation[:255],
        body=control_reply_body(request, result),
        headers={"correlation-id": correlation} if correlation else {},
    )
