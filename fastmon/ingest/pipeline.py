"""The batch pipeline: ``ingest_batch`` is the one door through which broker messages become
rows; the consumer, the ``fastmon_ingest`` command, watch mode and the demo all call it.

A whole batch commits or none of it does, so the consumer can ack every frame after the commit.
Reading (decode, validate, filter: ``read_batch``) needs no database and can run ahead of the
commit before it (``ingest_read``). STF announcements are written as a set, and when the
database refuses the set, one by one, so a refused message becomes a dead letter instead of
rolling back its neighbours. Database outages are not the message's fault: they propagate,
nothing commits, nothing is acked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from django.db import DataError, IntegrityError, transaction

from fastmon.conf import fastmon_settings
from fastmon.database.outages import is_outage
from fastmon.dead_letters.store import dead_letter
from fastmon.inbound.messages import BatchResult, InboundMessage, MessageResult, Outcome
from fastmon.inbound.schema import (
    MessageError,
    ProcessingReading,
    RunMessage,
    StfMessage,
    UnknownMessage,
    decode_body,
    validate_message,
)
from fastmon.ingest.runs import apply_run_message
from fastmon.ingest.stfs import Seen, upsert_stf_files
from fastmon.live.events import record_live_events
from fastmon.live.frames import processing_events
from fastmon.models import DeadLetter
from fastmon.processing.stage import apply_processing_message
from fastmon.quality import evaluate as quality
from fastmon.sampling.dispatch import enqueue_sampling
from fastmon.subscribers.control import apply_control_request

logger = logging.getLogger("fastmon.ingest")


def ingest_message(body: bytes | str, headers: Mapping[str, str] | None = None) -> MessageResult:
    """Ingest one message in its own transaction."""
    return ingest_batch([InboundMessage(body, headers or {})]).results[0]


# What reading a message, without the database, makes of it: a message to apply, the result
# of one that will not be applied (another namespace's, a type fastmon does not consume), the
# reason it can never be used (to dead-letter), or None for a control request.
Reading = RunMessage | StfMessage | ProcessingReading | MessageResult | MessageError | None
ReadBatch = list[tuple[InboundMessage, Reading]]


def ingest_batch(messages: Iterable[InboundMessage]) -> BatchResult:
    """Ingest a batch in one transaction; never raises for bad input, only for database outages.

    Run lifecycle messages are applied one by one, in order. STF announcements, the bulk of the
    traffic, are upserted together (a handful of queries for the whole batch); if the database
    refuses that set, they are redone one by one so only the culprit is dead-lettered.
    """
    return ingest_read(read_batch(messages))


def read_batch(messages: Iterable[InboundMessage]) -> ReadBatch:
    """Decode, validate and filter a batch: the half of ingest that needs no database, which a
    consumer does for the next batch while this one commits."""
    # Read once per batch: each read of a setting costs about as much as a small validation.
    max_bytes, namespace = fastmon_settings.MAX_BODY_BYTES, fastmon_settings.NAMESPACE
    control = fastmon_settings.CONTROL_DESTINATION
    return [
        (message, None if control and message.destination == control
         else _read(message, max_bytes, namespace))
        for message in messages
    ]  # fmt: skip


def ingest_read(batch: ReadBatch) -> BatchResult:
    """``ingest_batch`` for a batch ``read_batch`` has read."""
    with transaction.atomic():
        results: list[MessageResult | None] = []
        announcements: list[tuple[int, InboundMessage, StfMessage]] = []
        seen: Seen = {}  # what the quality checks are given
        processing: list[tuple[ProcessingReading, MessageResult]] = []
        for index, (message, reading) in enumerate(batch):
            if reading is None:
                results.append(apply_control_request(message))
            elif isinstance(reading, MessageError):
                results.append(dead_letter(message, reading.code, reading.reason, reading.msg_type))
            elif isinstance(reading, StfMessage):
                announcements.append((index, message, reading))
                results.append(None)
            elif isinstance(reading, RunMessage | ProcessingReading):
                result = _apply_alone(message, reading, seen)
                results.append(result)
                if isinstance(reading, ProcessingReading):
                    processing.append((reading, result))
            else:
                results.append(reading)
        if announcements:
            stored_at: set[int] = set()  # the indexes of the announcements stored
            for index, result in _apply_announcements(announcements, seen):
                results[index] = result
                if result.outcome is Outcome.STORED:
                    stored_at.add(index)
            samplable = [
                parsed.filename
                for index, _, parsed in announcements
                if parsed.msg_type in fastmon_settings.SAMPLE_ON and index in stored_at
            ]
            transaction.on_commit(lambda: enqueue_sampling(samplable))
        stored = [parsed for parsed, result in processing if result.outcome is Outcome.STORED]
        record_live_events(processing_events(stored))
        # The batch's STFs, then the runs it ended (its STFs are applied last), judged once.
        ended = {
            reading.run_id
            for (_, reading), result in zip(batch, results, strict=True)
            if isinstance(reading, RunMessage) and reading.msg_type == "end_run"
            and result is not None and result.outcome is Outcome.STORED
        }  # fmt: skip
        if seen or ended:
            quality.on_batch(seen, ended)
    batch_result = BatchResult([result for result in results if result is not None])
    if batch_result.results:
        logger.debug("ingested batch of %d: %s", len(batch_result.results),
                     dict(batch_result.counts))  # fmt: skip
    return batch_result


def _read(
    message: InboundMessage, max_bytes: int, namespace: str | None
) -> RunMessage | StfMessage | ProcessingReading | MessageResult | MessageError:
    try:
        data = decode_body(message.raw_body, max_bytes)
        # Other namespaces' traffic is not ours to judge: filter before validating.
        theirs = data.get("namespace")
        if namespace and theirs and theirs != namespace:
            return MessageResult(
                Outcome.FILTERED, data["msg_type"], f"namespace {theirs!r} is not {namespace!r}"
            )
        parsed = validate_message(data)
    except MessageError as exc:
        return exc
    if isinstance(parsed, UnknownMessage):
        logger.debug("ignoring message of unknown type %r", parsed.msg_type)
        return MessageResult(Outcome.IGNORED, parsed.msg_type, "msg_type not consumed by fastmon")
    return parsed


def _apply_announcements(
    announcements: list[tuple[int, InboundMessage, StfMessage]], seen: Seen
) -> list[tuple[int, MessageResult]]:
    try:
        with transaction.atomic():
            details = upsert_stf_files(
                [(message, parsed) for _, message, parsed in announcements], seen
            )
    except Exception as exc:
        if is_outage(exc):
            raise
        return [
            (index, _apply_alone(message, parsed, seen)) for index, message, parsed in announcements
        ]
    return [
        (index, MessageResult(Outcome.STORED, parsed.msg_type, detail))
        for (index, _, parsed), detail in zip(announcements, details, strict=True)
    ]


def _apply_alone(
    message: InboundMessage,
    parsed: RunMessage | StfMessage | ProcessingReading,
    seen: Seen,
) -> MessageResult:
    """Apply one message in its own savepoint: if the database refuses it, dead-letter it.

    A competing consumer inserting the same STF or run at the same moment also raises an
    IntegrityError; the second attempt then finds the row and updates it.
    """
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                if isinstance(parsed, RunMessage):
                    detail = apply_run_message(parsed)
                elif isinstance(parsed, StfMessage):
                    [detail] = upsert_stf_files([(message, parsed)], seen)
                else:
                    detail = apply_processing_message(parsed)
            return MessageResult(Outcome.STORED, parsed.msg_type, detail)
        except IntegrityError as exc:
            error: Exception = exc
            if attempt == 2:
                break
        except DataError as exc:
            error = exc
            break
        except Exception as exc:
            if is_outage(exc):
                raise
            # A bug of ours must not stop the stream: the message is kept, the log says why.
            logger.exception("failed on a %s message", parsed.msg_type)
            reason = f"{parsed.msg_type}: fastmon failed on it: {exc!r}"
            return dead_letter(message, DeadLetter.Reason.INTERNAL, reason, parsed.msg_type)
    reason = f"{parsed.msg_type}: the database refused it: {error}".strip()
    return dead_letter(message, DeadLetter.Reason.REJECTED, reason, parsed.msg_type)
