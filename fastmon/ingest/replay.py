"""An operator's answer to a dead letter: ingest it again as it arrived (after a fix upstream
or here), or discard it. Either is recorded on the letter, with who did it."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from fastmon.inbound.messages import InboundMessage, MessageResult, Outcome
from fastmon.ingest.pipeline import ingest_batch
from fastmon.models import DeadLetter


class Refused(Exception):
    """The letter was already replayed or discarded, or (replay) only the start of its body was
    kept."""


def replay_dead_letter(letter_id: int, by: str) -> MessageResult:
    """Ingest a dead letter's body again. If it is refused again, the letter stays pending, one
    occurrence more, and the result says why."""
    with transaction.atomic():
        letter = _pending_letter(letter_id)
        if letter.body_truncated:
            raise Refused(
                f"dead letter {letter_id} kept only the start of its {letter.body_size}-byte body"
            )
        result = ingest_batch([InboundMessage(letter.raw_body(), letter.headers)]).results[0]
        if result.outcome is not Outcome.DEAD_LETTERED:
            _resolve(letter, DeadLetter.Status.REPLAYED, by)
    return result


def discard_dead_letter(letter_id: int, by: str) -> None:
    with transaction.atomic():
        _resolve(_pending_letter(letter_id), DeadLetter.Status.DISCARDED, by)


def _pending_letter(letter_id: int) -> DeadLetter:
    letter = DeadLetter.objects.select_for_update().get(pk=letter_id)
    if letter.status != DeadLetter.Status.PENDING:
        raise Refused(f"dead letter {letter_id} was already {letter.status}")
    return letter


def _resolve(letter: DeadLetter, status: str, by: str) -> None:
    letter.status, letter.resolved_at, letter.resolved_by = status, timezone.now(), by
    letter.save(update_fields=["status", "resolved_at", "resolved_by"])
