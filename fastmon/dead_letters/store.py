"""Keeping a message that cannot be used: its raw body (a bounded start of a huge one, with the
whole body's size and SHA-256), headers, destination and the reason, one row per distinct body
while it is pending."""

from __future__ import annotations

import base64
import hashlib
import logging

from django.db.models import F
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.inbound.messages import InboundMessage, MessageResult, Outcome
from fastmon.live.events import record_live_events
from fastmon.live.frames import dead_letter_event
from fastmon.models import DeadLetter

logger = logging.getLogger("fastmon.ingest")


def dead_letter(message: InboundMessage, code: str, reason: str, msg_type: str) -> MessageResult:
    """Store the message as a dead letter (in the caller's transaction) and say so."""
    raw = message.raw_body
    digest = hashlib.sha256(raw).hexdigest()
    destination = _text(message.destination)[:255]
    # The same body again while its letter is pending (a redelivery, a flood) is counted,
    # not stored again: ingest stays idempotent and the table bounded.
    pending = (
        DeadLetter.objects.select_for_update()
        .filter(body_sha256=digest, destination=destination, status=DeadLetter.Status.PENDING)
        .first()
    )
    if pending:
        DeadLetter.objects.filter(pk=pending.pk).update(
            occurrences=F("occurrences") + 1, last_received_at=timezone.now()
        )
        logger.warning("dead letter %d arrived again (%s): %s", pending.pk, code, reason)
        return MessageResult(Outcome.DEAD_LETTERED, msg_type, reason, pending.pk)
    kept = raw[: fastmon_settings.DEAD_LETTER_BODY_BYTES]
    body, encoding = storable_body(kept)
    headers = {_text(k): _text(v) for k, v in message.headers.items()}
    letter = DeadLetter.objects.create(
        body=body,
        body_encoding=encoding,
        body_size=len(raw),
        body_sha256=digest,
        body_truncated=len(kept) < len(raw),
        headers=headers,
        destination=destination,
        msg_type=_text(msg_type)[:100],
        reason_code=code,
        reason=_text(reason),
    )
    record_live_events([dead_letter_event(letter)])
    logger.warning("dead-lettered message %d (%s): %s", letter.pk, code, reason)
    return MessageResult(Outcome.DEAD_LETTERED, msg_type, reason, letter.pk)


def _text(value: object) -> str:
    """Text PostgreSQL stores (no NUL), whatever the message carried."""
    return str(value).replace("\x00", "\ufffd")


def storable_body(raw: bytes) -> tuple[str, str]:
    """The body as text when PostgreSQL can store it as such (UTF-8, no NUL), else base64."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        return base64.b64encode(raw).decode("ascii"), DeadLetter.Encoding.BASE64
    return text, DeadLetter.Encoding.UTF8
