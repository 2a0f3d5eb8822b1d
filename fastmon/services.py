"""The domain operations every entry point calls (consumer, tasks, API, demo), in sections:

- ingest: ``ingest_batch`` is the one door through which broker messages become rows. A whole
  batch commits or none of it does, so the consumer can ack every frame after the commit; STF
  announcements are written as a set, and when the database refuses the set, one by one, so a
  refused message becomes a dead letter instead of rolling back its neighbours. Database
  outages are not the message's fault: they propagate, nothing commits, nothing is acked.
- TF samples: ``record_tf_samples`` stores samples with their outbox messages and live events.
- sampling: ``sample_stfs`` (the Celery task's body), policies and their versions.
- dead letters: replay and discard.
- subscribers: ``save_subscriber``, ``remove_subscriber`` and the control requests that call
  them; routing of TF samples to subscribers happens in ``record_tf_samples``.
- live events: ``record_live_events``, numbered in commit order and pushed after the commit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from django.db import DatabaseError, DataError, IntegrityError, models, transaction
from django.db.models import F, Max, Min, QuerySet
from django.utils import timezone

from fastmon import live, swf_monitor
from fastmon.conf import fastmon_settings
from fastmon.db import bulk_insert, insert_rows
from fastmon.messaging.schema import (
    MessageError,
    RunMessage,
    StfMessage,
    UnknownMessage,
    decode_body,
    validate_message,
)
from fastmon.models import (
    DeadLetter,
    LiveEvent,
    OutboxMessage,
    Run,
    SamplingPolicy,
    StfFile,
    Subscriber,
    TfSample,
)
from fastmon.sampling import Policy, StfFacts, TfRange, sample
from fastmon.storage import Unreachable, local_path, read_tf_ranges
from fastmon.subscriptions import (
    RequestError,
    SampleFacts,
    Subscription,
    Unsubscription,
    check_reply_to,
    parse_control_request,
    selects,
)

logger = logging.getLogger("fastmon.ingest")


# -- ingest -------------------------------------------------------------------------------------


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

    @property
    def broker_at(self) -> datetime | None:
        """When the broker took the message (its ``timestamp`` header, in ms)."""
        try:
            return datetime.fromtimestamp(int(self.headers["timestamp"]) / 1000, tz=UTC)
        except (KeyError, ValueError, OverflowError):
            return None


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


def ingest_message(body: bytes | str, headers: Mapping[str, str] | None = None) -> MessageResult:
    """Ingest one message in its own transaction."""
    return ingest_batch([InboundMessage(body, headers or {})]).results[0]


# What reading a message, without the database, makes of it: a message to apply, the result
# of one that will not be applied (another namespace's, a type fastmon does not consume), the
# reason it can never be used (to dead-letter), or None for a control request.
Reading = RunMessage | StfMessage | MessageResult | MessageError | None
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
        for index, (message, reading) in enumerate(batch):
            if reading is None:
                results.append(_apply_control_request(message))
            elif isinstance(reading, MessageError):
                results.append(
                    _dead_letter(message, reading.code, reading.reason, reading.msg_type)
                )
            elif isinstance(reading, StfMessage):
                announcements.append((index, message, reading))
                results.append(None)
            elif isinstance(reading, RunMessage):
                results.append(_apply_alone(message, reading))
            else:
                results.append(reading)
        if announcements:
            for index, result in _apply_announcements(announcements):
                results[index] = result
            samplable = [
                parsed.filename
                for index, _, parsed in announcements
                if parsed.msg_type in fastmon_settings.SAMPLE_ON
                and results[index].outcome is Outcome.STORED
            ]
            transaction.on_commit(lambda: enqueue_sampling(samplable))
    batch_result = BatchResult([result for result in results if result is not None])
    if batch_result.results:
        logger.debug("ingested batch of %d: %s", len(batch_result.results),
                     dict(batch_result.counts))  # fmt: skip
    return batch_result


def _stf_events(announcements: list[StfMessage]) -> list[LiveEvent]:
    """One live event per run for a batch's new or changed STFs: the pages' table and rate."""
    by_run: dict[int | None, list[dict[str, Any]]] = {}
    for message in announcements:
        by_run.setdefault(message.run_number, []).append({
            "stf_filename": message.filename,
            "sequence": message.sequence_number,
            "msg_type": message.msg_type,
            "state": message.state,
            "substate": message.substate,
            "size_bytes": message.file_size,
        })  # fmt: skip
    return [
        LiveEvent(kind=LiveEvent.Kind.STF, run_number=run, payload={"stfs": stfs})
        for run, stfs in by_run.items()
    ]


def _read(
    message: InboundMessage, max_bytes: int, namespace: str | None
) -> RunMessage | StfMessage | MessageResult | MessageError:
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
    announcements: list[tuple[int, InboundMessage, StfMessage]],
) -> list[tuple[int, MessageResult]]:
    try:
        with transaction.atomic():
            details = _upsert_stf_files([(message, parsed) for _, message, parsed in announcements])
    except Exception as exc:
        if _is_outage(exc):
            raise
        return [(index, _apply_alone(message, parsed)) for index, message, parsed in announcements]
    return [
        (index, MessageResult(Outcome.STORED, parsed.msg_type, detail))
        for (index, _, parsed), detail in zip(announcements, details, strict=True)
    ]


def _apply_alone(message: InboundMessage, parsed: RunMessage | StfMessage) -> MessageResult:
    """Apply one message in its own savepoint: if the database refuses it, dead-letter it.

    A competing consumer inserting the same STF or run at the same moment also raises an
    IntegrityError; the second attempt then finds the row and updates it.
    """
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                if isinstance(parsed, RunMessage):
                    detail = _apply_run_message(parsed)
                else:
                    [detail] = _upsert_stf_files([(message, parsed)])
            return MessageResult(Outcome.STORED, parsed.msg_type, detail)
        except IntegrityError as exc:
            error: Exception = exc
            if attempt == 2:
                break
        except DataError as exc:
            error = exc
            break
        except Exception as exc:
            if _is_outage(exc):
                raise
            # A bug of ours must not stop the stream: the message is kept, the log says why.
            logger.exception("failed on a %s message", parsed.msg_type)
            reason = f"{parsed.msg_type}: fastmon failed on it: {exc!r}"
            return _dead_letter(message, DeadLetter.Reason.INTERNAL, reason, parsed.msg_type)
    reason = f"{parsed.msg_type}: the database refused it: {error}".strip()
    return _dead_letter(message, DeadLetter.Reason.REJECTED, reason, parsed.msg_type)


def _is_outage(exc: Exception) -> bool:
    """Database errors other than a refused row are not the message's fault: they must reach
    the caller (the consumer retries; nothing is acked)."""
    return isinstance(exc, DatabaseError) and not isinstance(exc, IntegrityError | DataError)


def _storable_body(raw: bytes) -> tuple[str, str]:
    """The body as text when PostgreSQL can store it as such (UTF-8, no NUL), else base64."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        return base64.b64encode(raw).decode("ascii"), DeadLetter.Encoding.BASE64
    return text, DeadLetter.Encoding.UTF8


def _dead_letter(message: InboundMessage, code: str, reason: str, msg_type: str) -> MessageResult:
    raw = message.raw_body
    digest = hashlib.sha256(raw).hexdigest()
    destination = message.destination[:255]
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
    body, encoding = _storable_body(raw)
    headers = {str(k): str(v).replace("\x00", "\ufffd") for k, v in message.headers.items()}
    letter = DeadLetter.objects.create(
        body=body,
        body_encoding=encoding,
        body_size=len(raw),
        body_sha256=digest,
        headers=headers,
        destination=destination,
        msg_type=msg_type.replace("\x00", "\ufffd")[:100],
        reason_code=code,
        reason=reason,
    )
    record_live_events([LiveEvent(
        kind=LiveEvent.Kind.DEAD_LETTER,
        payload={"id": letter.pk, "reason_code": code, "reason": reason,
                 "msg_type": letter.msg_type, "destination": destination},
    )])  # fmt: skip
    logger.warning("dead-lettered message %d (%s): %s", letter.pk, code, reason)
    return MessageResult(Outcome.DEAD_LETTERED, msg_type, reason, letter.pk)


def _aware(value: datetime | None) -> datetime | None:
    """Testbed agents send naive local times; read them in the site's time zone."""
    if value is None or timezone.is_aware(value):
        return value
    return timezone.make_aware(value, timezone.get_default_timezone())


def _update(instance: models.Model, values: Mapping[str, Any]) -> list[str]:
    """Set the values that differ and return their names, so a redelivery writes nothing."""
    changed = [name for name, value in values.items() if getattr(instance, name) != value]
    for name in changed:
        setattr(instance, name, values[name])
    return changed


def _save_changes(instance: models.Model, changed: list[str]) -> None:
    if changed:
        instance.save(update_fields=[*changed, "updated_at"])


_RUN_STAMPS = {"run_imminent": "imminent_at", "start_run": "started_at", "end_run": "ended_at"}


def _apply_run_message(message: RunMessage) -> str:
    run, created = Run.objects.select_for_update().get_or_create(run_number=message.run_id)
    timestamp = _aware(message.timestamp)
    values: dict[str, Any] = {}
    if message.namespace:
        values["namespace"] = message.namespace
    if message.execution_id:
        values["execution_id"] = message.execution_id
    if message.run_conditions:
        values["run_conditions"] = {**run.run_conditions, **message.run_conditions}
    if message.total_stf_files is not None:
        values["total_stf_files"] = message.total_stf_files
    stamp = _RUN_STAMPS.get(message.msg_type)
    if stamp and timestamp:
        values[stamp] = timestamp
    # Messages can arrive out of order (redelivery): an older state never overwrites a newer one.
    newer = timestamp is None or run.state_changed_at is None or timestamp >= run.state_changed_at
    if (message.state or message.substate) and newer:
        # A message that leaves one of the two out keeps what is known of it.
        values["state"] = message.state or run.state
        values["substate"] = message.substate or run.substate
        values["state_changed_at"] = timestamp or run.state_changed_at
    changed = _update(run, values)
    _save_changes(run, changed)
    if created or {"state", "substate"} & set(changed):
        record_live_events([LiveEvent(
            kind=LiveEvent.Kind.RUN,
            run_number=run.run_number,
            payload={"run_number": run.run_number, "state": run.state,
                     "substate": run.substate, "msg_type": message.msg_type},
        )])  # fmt: skip
    return f"run {run.run_number} {'created' if created else 'updated'} by {message.msg_type}"


# STF columns filled from an announcement; everything else it carries goes to metadata.
_STF_COLUMNS = {
    "msg_type", "filename", "run_id", "sequence", "start", "end", "state", "substate",
    "checksum", "size", "size_bytes", "file_url", "tf_count",
}  # fmt: skip
# An announcement moves an STF forward, never back (a late stf_gen after stf_ready, a
# redelivered stf_ready after sampling).
_STF_STATUS_RANK = {
    StfFile.Status.ANNOUNCED: 0,
    StfFile.Status.READY: 1,
    StfFile.Status.SAMPLED: 2,
    StfFile.Status.SKIPPED: 2,
    StfFile.Status.FAILED: 2,
}


def _upsert_stf_files(announcements: list[tuple[InboundMessage, StfMessage]]) -> list[str]:
    """Create or enrich the STF files of these announcements, in order, in a few queries."""
    messages = [parsed for _, parsed in announcements]
    runs = _run_ids([m for m in messages if m.run_number is not None])
    stored = {stf.stf_filename: stf for stf in _locked_stf_files({m.filename for m in messages})}
    new: dict[str, dict[str, Any]] = {}  # rows to insert, by file name
    changed: dict[str, StfFile] = {}
    changed_fields: set[str] = set()
    touched: list[StfMessage] = []  # created or changed: what the live pages hear of
    details = []
    now = timezone.now()
    for inbound, message in announcements:
        values, status, extras = _stf_values(message, runs)
        stf, row = stored.get(message.filename), new.get(message.filename)
        if stf is None and row is None:
            new[message.filename] = {
                "stf_filename": message.filename,
                "status": status,
                "metadata": {message.msg_type: extras},
                "broker_at": inbound.broker_at,
                "received_at": inbound.received_at or now,
                "committed_at": now,
                **values,
            }
            touched.append(message)
            details.append(f"STF {message.filename} created by {message.msg_type}")
            continue
        if stf is not None:
            fields = _update(
                stf, _enrichment(partial(getattr, stf), message, values, status, extras)
            )
            if fields:
                changed[message.filename] = stf
                changed_fields.update(fields)
        else:  # a second announcement of an STF this batch creates
            changes = _enrichment(row.get, message, values, status, extras)
            row.update(changes)
            fields = list(changes)
        if fields:
            touched.append(message)
        details.append(f"STF {message.filename} updated by {message.msg_type}")
    insert_rows(StfFile, list(new.values()))
    if changed:
        for stf in changed.values():  # bulk_update does not apply auto_now
            stf.updated_at = now
        StfFile.objects.bulk_update(changed.values(), [*changed_fields, "updated_at"])
    record_live_events(_stf_events(touched))
    return details


def _locked_stf_files(names: set[str]) -> Iterable[StfFile]:
    """The STFs of these names, locked for update. On PostgreSQL the names travel as one array
    parameter: Django's IN list, a placeholder per name, cost a batch of 500 new announcements
    about a tenth of its ingest time to build and quote."""
    if transaction.get_connection().vendor != "postgresql":
        return StfFile.objects.select_for_update().filter(stf_filename__in=names)
    table = StfFile._meta.db_table
    return StfFile.objects.raw(
        f'SELECT * FROM "{table}" WHERE stf_filename = ANY(%s) FOR UPDATE', [list(names)]
    )


def _enrichment(
    known: Callable[[str], Any],
    message: StfMessage,
    values: dict[str, Any],
    status: str,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """What a later announcement changes on a known STF (``known`` reads its fields): what it
    leaves out never erases what is known, and its status only moves the STF forward."""
    if _STF_STATUS_RANK[status] > _STF_STATUS_RANK[StfFile.Status(known("status"))]:
        values["status"] = status
    values["metadata"] = {**known("metadata"), message.msg_type: extras}
    return {name: value for name, value in values.items() if known(name) != value}


def _run_ids(messages: list[StfMessage]) -> dict[int, int]:
    """Run number to primary key, creating the runs announcements name before their run_imminent."""
    numbers = {m.run_number for m in messages}
    ids = dict(Run.objects.filter(run_number__in=numbers).values_list("run_number", "pk"))
    missing = {m.run_number: m for m in messages if m.run_number not in ids}
    if missing:
        Run.objects.bulk_create(
            [
                Run(
                    run_number=number,
                    namespace=m.namespace or "",
                    execution_id=m.execution_id or "",
                )
                for number, m in missing.items()
            ],
            ignore_conflicts=True,
        )
        ids.update(Run.objects.filter(run_number__in=missing).values_list("run_number", "pk"))
        record_live_events([
            LiveEvent(kind=LiveEvent.Kind.RUN, run_number=number, payload={
                "run_number": number, "state": None, "substate": None, "msg_type": m.msg_type})
            for number, m in missing.items()
        ])  # fmt: skip
    return ids


def _stf_values(message: StfMessage, runs: dict[int, int]) -> tuple[dict[str, Any], str, dict]:
    """The columns an announcement sets (nulls left out), its status, and its other fields."""
    announced = {
        "run_id": runs.get(message.run_number) if message.run_number is not None else None,
        "sequence": message.sequence_number,
        "size_bytes": message.file_size,
        "checksum": message.checksum,
        "file_url": message.file_url,
        "tf_count": message.tf_count,
        "state": message.state,
        "substate": message.substate,
        "started_at": _aware(message.start),
        "ended_at": _aware(message.end),
    }
    values = {name: value for name, value in announced.items() if value is not None}
    status = StfFile.Status.READY if message.msg_type == "stf_ready" else StfFile.Status.ANNOUNCED
    extras = message.model_dump(mode="json", exclude=_STF_COLUMNS, exclude_none=True)
    return values, status, extras


# -- TF samples ---------------------------------------------------------------------------------


def tf_sample_filename(stf_filename: str, number: int) -> str:
    """The testbed's TF sample name: ``<stf name without .stf>_tf_<NNN>.tf``, from 1."""
    return f"{stf_filename.removesuffix('.stf')}_tf_{number:03d}.tf"


@dataclass(frozen=True)
class SamplePlan:
    """The TF ranges to register for one STF, and the policy version that chose them."""

    stf: StfFile
    ranges: Sequence[TfRange]
    policy: SamplingPolicy | None = None


def record_tf_samples(plans: Sequence[SamplePlan]) -> list[TfSample]:
    """Store TF samples and, in the same transaction, their ``tf_file_registered`` in the outbox
    and their live events. Idempotent: samples already stored are neither stored nor announced
    again. Returns the samples stored now."""
    for plan in plans:
        tf_count = plan.stf.tf_count or fastmon_settings.DEFAULT_TF_COUNT
        for tf_range in plan.ranges:
            if not 0 <= tf_range.tf_first <= tf_range.tf_last < tf_count:
                raise ValueError(
                    f"TF range {tf_range.tf_first}..{tf_range.tf_last} is outside "
                    f"0..{tf_count - 1} of {plan.stf.stf_filename}"
                )
    named = [
        (plan, tf_sample_filename(plan.stf.stf_filename, number), tf_range)
        for plan in plans
        for number, tf_range in enumerate(plan.ranges, 1)
    ]
    seeds = {plan.policy.pk: plan.policy.policy().seed for plan in plans if plan.policy}
    with transaction.atomic():
        known = set(
            TfSample.objects.filter(tf_filename__in=[name for _, name, _ in named]).values_list(
                "tf_filename", flat=True
            )
        )
        samples = [
            TfSample(
                stf=plan.stf,
                run_id=plan.stf.run_id,
                tf_filename=name,
                tf_first=tf_range.tf_first,
                tf_last=tf_range.tf_last,
                tf_count=tf_range.tf_count,
                file_size_bytes=tf_range.file_size_bytes,
                checksum=tf_range.checksum,
                metadata=dict(tf_range.metadata),
                size_estimated=tf_range.size_estimated,
                policy=plan.policy,
                seed=seeds[plan.policy.pk] if plan.policy else None,
            )
            for plan, name, tf_range in named
            if name not in known
        ]
        bulk_insert(TfSample, samples)  # sets created_at on each
        insert_rows(OutboxMessage, _outgoing_for(samples))
        by_stf: dict[int, list[TfSample]] = {}
        for sample in samples:
            by_stf.setdefault(sample.stf_id, []).append(sample)
        record_live_events([_tf_samples_event(group) for group in by_stf.values()])
    return samples


def _outgoing_for(samples: list[TfSample]) -> list[dict[str, Any]]:
    """Outbox rows (as values: there may be dozens per sample) for each sample's
    ``tf_file_registered`` to the testbed, a copy for every subscriber that selects it, and its
    registration in swf-monitor when SWF_MONITOR_FEED is on."""
    announce = tf_file_registered_bodies()
    destination = fastmon_settings.PUBLISH_DESTINATION
    subscribers = routable_subscribers()
    feed = fastmon_settings.SWF_MONITOR_FEED and bool(fastmon_settings.SWF_MONITOR_URL)
    rows = []
    for tf_sample in samples:
        body = announce(tf_sample.stf, tf_sample)
        message = {
            "msg_type": "tf_file_registered",
            "subject": tf_sample.tf_filename,
            "body": json.dumps(body),
        }
        rows.append({**message, "destination": destination})
        stf, run = tf_sample.stf, tf_sample.stf.run
        facts = SampleFacts(
            kind="tf_file_registered",
            tf_filename=tf_sample.tf_filename,
            run_number=body["run_id"],
            namespace=body["namespace"] or "",
            state=stf.state or (run.state if run else ""),  # the DAQ's state when it was taken
            substate=stf.substate or (run.substate if run else ""),
        )
        rows.extend(
            {
                **message,
                "destination": subscriber.destination,
                "subscriber_id": subscriber.pk,
                "headers": {"fastmon-subscriber": subscriber.name},
            }
            for subscriber in subscribers
            if selects(subscriber.filters, subscriber.fraction, facts)
        )
        if feed:
            rows.append({
                "transport": OutboxMessage.Transport.SWF_MONITOR,
                "destination": swf_monitor.FASTMON_FILES_PATH,
                "msg_type": "fastmon_file",
                "subject": tf_sample.tf_filename,
                "body": json.dumps(fastmon_file_body(stf, tf_sample)),
            })  # fmt: skip
    return rows


def fastmon_file_body(stf: StfFile, sample: TfSample) -> dict[str, Any]:
    """The POST body the testbed agent sends swf-monitor's /api/fastmon-files/ today."""
    metadata = dict(sample.metadata)
    if sample.checksum:
        metadata.setdefault("checksum", sample.checksum)
    return {
        "stf_file": stf.stf_filename,
        "tf_filename": sample.tf_filename,
        "tf_first": sample.tf_first,
        "tf_last": sample.tf_last,
        "tf_count": sample.tf_count,
        "file_size_bytes": sample.file_size_bytes,
        "status": "registered",
        "metadata": metadata,
    }


def _tf_samples_event(samples: list[TfSample]) -> LiveEvent:
    """One live event per STF, carrying all the samples registered for it."""
    stf = samples[0].stf
    return LiveEvent(
        kind=LiveEvent.Kind.TF_SAMPLES,
        run_number=stf.run.run_number if stf.run else None,
        payload={
            "stf_filename": stf.stf_filename,
            "stf_received_at": stf.received_at.isoformat() if stf.received_at else None,
            "tf_count": stf.tf_count or fastmon_settings.DEFAULT_TF_COUNT,
            "samples": [
                {
                    "tf_filename": sample.tf_filename,
                    "tf_first": sample.tf_first,
                    "tf_last": sample.tf_last,
                    "tf_count": sample.tf_count,
                    "file_size_bytes": sample.file_size_bytes,
                    "size_estimated": sample.size_estimated,
                    "status": sample.status,
                    "created_at": sample.created_at.isoformat(),
                }
                for sample in samples
            ],
        },
    )


def tf_file_registered_bodies() -> Callable[[StfFile, TfSample], dict[str, Any]]:
    """A maker of the spec's ``tf_file_registered`` bodies, with the settings read once.

    Never ``agent_name`` beside ``status`` in a body: swf-monitor would take it for an agent
    heartbeat.
    """
    agent = fastmon_settings.AGENT_NAME
    namespace = fastmon_settings.NAMESPACE

    def body(stf: StfFile, sample: TfSample) -> dict[str, Any]:
        run = stf.run
        created = timezone.localtime(sample.created_at).replace(tzinfo=None)
        return {
            "msg_type": "tf_file_registered",
            "namespace": namespace or (run.namespace if run else "") or None,
            "run_id": run.run_number if run else None,
            "execution_id": (run.execution_id if run else "") or None,
            "processed_by": agent,
            "sender": agent,
            "tf_file_id": str(sample.tf_file_id),
            "tf_filename": sample.tf_filename,
            "tf_first": sample.tf_first,
            "tf_last": sample.tf_last,
            "tf_count": sample.tf_count,
            "file_size_bytes": sample.file_size_bytes,
            "stf_filename": stf.stf_filename,
            "status": sample.status,
            "timestamp": created.isoformat(),
        }

    return body


# -- sampling -----------------------------------------------------------------------------------

_SAMPLABLE = [StfFile.Status.ANNOUNCED, StfFile.Status.READY]


@dataclass(frozen=True)
class SamplingReport:
    sampled: int = 0
    skipped: int = 0
    failed: int = 0
    samples: int = 0
    bytes_read: int = 0


def enqueue_sampling(stf_filenames: Sequence[str]) -> None:
    """Hand STFs to the sampling workers, in chunks. A failure to enqueue loses nothing: the
    periodic sweep (``sweep_unsampled``) finds STFs left unsampled."""
    if not fastmon_settings.SAMPLING_ENABLED or not stf_filenames:
        return
    from fastmon.tasks import sample_stfs

    chunk = fastmon_settings.SAMPLING_TASK_CHUNK
    try:
        for start in range(0, len(stf_filenames), chunk):
            # retry=False: a consumer must never wait on a sick Celery broker.
            sample_stfs.apply_async((list(stf_filenames[start : start + chunk]),), retry=False)
    except Exception:
        logger.exception("could not enqueue %d STFs for sampling", len(stf_filenames))


def sample_stfs(stf_filenames: Sequence[str]) -> SamplingReport:
    """Sample these STFs under their policy and register the samples. Idempotent: an STF
    already sampled (or being sampled by another worker) is left alone.

    Each run counts an attempt first, in a transaction of its own: a worker that dies while
    sampling leaves the count behind, and past SAMPLING_MAX_ATTEMPTS the STF is marked failed
    instead of killing workers for ever.
    """
    names = list(dict.fromkeys(stf_filenames))
    pending = StfFile.objects.filter(
        stf_filename__in=names, sampled_at__isnull=True, status__in=_SAMPLABLE
    )
    with transaction.atomic():
        pending.update(sampling_attempts=F("sampling_attempts") + 1)
        failed = pending.filter(sampling_attempts__gt=fastmon_settings.SAMPLING_MAX_ATTEMPTS)
        given_up = list(failed.values_list("stf_filename", "run__run_number"))
        failed_names = [name for name, _ in given_up]
        failed.update(status=StfFile.Status.FAILED, sampled_at=timezone.now())
        record_live_events([
            LiveEvent(
                kind=LiveEvent.Kind.ALARM,
                run_number=run_number,
                payload={"severity": "error", "stf_filename": name, "message": (
                    f"gave up sampling {name} after "
                    f"{fastmon_settings.SAMPLING_MAX_ATTEMPTS} attempts")},
            )
            for name, run_number in given_up
        ])  # fmt: skip
    for name in failed_names:
        logger.error("gave up sampling %s after %d attempts", name,
                     fastmon_settings.SAMPLING_MAX_ATTEMPTS)  # fmt: skip

    # Files are read outside any transaction: while a worker reads, the consumer may need to
    # lock these rows for a redelivered announcement.
    stfs = list(pending.select_related("run").order_by("id"))
    plans, skipped, bytes_read = _plan_samples(stfs)
    try:
        samples = _register_sampled(pending, plans, skipped)
    except Exception as exc:
        if _is_outage(exc):
            raise
        # One STF must not fail its neighbours: register them one by one; the culprit stays
        # unsampled (its attempts count towards giving up) and the log says why.
        logger.exception("registering samples of %d STFs failed; one by one now", len(stfs))
        samples = []
        for stf in stfs:
            try:
                samples += _register_sampled(
                    pending,
                    [plan for plan in plans if plan.stf.pk == stf.pk],
                    [pk for pk in skipped if pk == stf.pk],
                )
            except Exception as alone:
                if _is_outage(alone):
                    raise
                logger.exception("could not register the samples of %s", stf.stf_filename)
    sampled = len({sample.stf_id for sample in samples})
    return SamplingReport(sampled, len(skipped), len(failed_names), len(samples), bytes_read)


def _register_sampled(
    pending: QuerySet[StfFile], plans: list[SamplePlan], skipped: list[int]
) -> list[TfSample]:
    """Store the planned samples and mark their STFs, in one transaction; only for STFs still
    unsampled once locked (another worker may have been faster)."""
    with transaction.atomic():
        ours = set(
            pending.filter(pk__in=[plan.stf.pk for plan in plans] + skipped)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        plans = [plan for plan in plans if plan.stf.pk in ours]
        samples = record_tf_samples(plans)
        now = timezone.now()
        StfFile.objects.filter(pk__in=[plan.stf.pk for plan in plans]).update(
            status=StfFile.Status.SAMPLED, sampled_at=now
        )
        StfFile.objects.filter(pk__in=[pk for pk in skipped if pk in ours]).update(
            status=StfFile.Status.SKIPPED, sampled_at=now
        )
    return samples


def _plan_samples(stfs: list[StfFile]) -> tuple[list[SamplePlan], list[int], int]:
    first_sequences = dict(
        StfFile.objects.filter(run_id__in={stf.run_id for stf in stfs if stf.run_id})
        .values("run_id")
        .annotate(first=Min("sequence"))
        .values_list("run_id", "first")
    )
    policies: dict[tuple[str, str], tuple[SamplingPolicy, Policy] | None] = {}
    plans, skipped, bytes_read = [], [], 0
    for stf in stfs:
        namespace = (stf.run.namespace if stf.run else "") or fastmon_settings.NAMESPACE or ""
        run_type = str(stf.run.run_conditions.get("run_type", "")) if stf.run else ""
        if (namespace, run_type) not in policies:
            row = current_policy(namespace, run_type)
            policies[namespace, run_type] = (row, row.policy()) if row else None
        chosen = policies[namespace, run_type]
        tf_count = stf.tf_count or fastmon_settings.DEFAULT_TF_COUNT
        facts = StfFacts(
            stf_filename=stf.stf_filename,
            run_number=stf.run.run_number if stf.run else None,
            sequence=stf.sequence,
            tf_count=tf_count,
            size_bytes=stf.size_bytes,
            first_of_run=stf.sequence is not None
            and stf.sequence == first_sequences.get(stf.run_id),
        )
        ranges = sample(chosen[1], facts) if chosen else []
        if not ranges:
            skipped.append(stf.pk)
            continue
        measured, read = _measure(stf, ranges, tf_count)
        plans.append(SamplePlan(stf, measured, chosen[0]))
        bytes_read += read
    return plans, skipped, bytes_read


def _measure(stf: StfFile, ranges: list[TfRange], tf_count: int) -> tuple[list[TfRange], int]:
    """Real sizes and Adler-32 from the file when it is reachable; else estimated sizes."""
    context = {"state": stf.state, "substate": stf.substate}
    try:
        path = local_path(stf.file_url, stf.stf_filename, fastmon_settings.DATA_ROOTS)
        measured, read = read_tf_ranges(
            path,
            tf_count,
            [(r.tf_first, r.tf_last) for r in ranges],
            _tf_boundaries(stf, tf_count, path.stat().st_size),
        )
    except (Unreachable, OSError, ValueError) as exc:  # ValueError: a URL Python cannot parse
        stf_size = stf.size_bytes or fastmon_settings.ESTIMATED_STF_SIZE_BYTES
        estimated = {**context, "estimated_because": str(exc)}
        return [
            replace(
                r,
                file_size_bytes=stf_size * r.tf_count // tf_count,
                size_estimated=True,
                metadata=estimated,
            )
            for r in ranges
        ], 0
    return [
        replace(r, file_size_bytes=m.size_bytes, checksum=m.checksum, metadata=context)
        for r, m in zip(ranges, measured, strict=True)
    ], read


def _tf_boundaries(stf: StfFile, tf_count: int, file_size: int) -> list[int] | None:
    """TF byte offsets when the announcement gave usable ones (``tf_offsets``)."""
    offsets = stf.metadata.get("stf_ready", {}).get("tf_offsets")
    if (
        isinstance(offsets, list)
        and len(offsets) == tf_count + 1
        and all(isinstance(o, int) for o in offsets)
        and offsets == sorted(offsets)
        and offsets[0] >= 0
        and offsets[-1] <= file_size
    ):
        return offsets
    return None


def current_policy(namespace: str, run_type: str) -> SamplingPolicy | None:
    """The newest version of the most specific active policy for this namespace and run type
    (both set, then namespace, then run type, then neither). With no policy at all, the
    testbed's is created as version 1."""
    if not SamplingPolicy.objects.exists():
        SamplingPolicy.objects.get_or_create(
            name="testbed", version=1,
            defaults={"description": "The testbed's algorithm, made deterministic."},
        )  # fmt: skip
    # The newest version of each name decides, even when an older one matched better.
    newest: dict[str, SamplingPolicy] = {}
    for row in SamplingPolicy.objects.order_by("name", "-version"):
        newest.setdefault(row.name, row)
    candidates = [
        row
        for row in newest.values()
        if row.active and row.namespace in {namespace, ""} and row.run_type in {run_type, ""}
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (bool(r.namespace), bool(r.run_type), r.name))


def save_policy_version(policy: SamplingPolicy, created_by: str = "") -> SamplingPolicy:
    """Save a policy as a new version: earlier versions stay, as the ledger of what chose past
    samples."""
    policy.full_clean(exclude=["version"])
    with transaction.atomic():
        latest = (
            SamplingPolicy.objects.select_for_update()
            .filter(name=policy.name)
            .aggregate(version=Max("version"))["version"]
        )
        policy.pk = None
        policy.version = (latest or 0) + 1
        policy.created_by = created_by
        policy.save()
    return policy


def sweep_unsampled() -> int:
    """Enqueue STFs that should have been sampled by now and were not (lost enqueue, lost
    task); the periodic task calls it. Returns how many were enqueued."""
    cutoff = timezone.now() - timedelta(seconds=fastmon_settings.SAMPLING_SWEEP_AFTER_S)
    statuses = [
        StfFile.Status.READY if kind == "stf_ready" else StfFile.Status.ANNOUNCED
        for kind in fastmon_settings.SAMPLE_ON
    ]
    names = list(
        StfFile.objects.filter(sampled_at__isnull=True, status__in=statuses, received_at__lt=cutoff)
        .order_by("id")
        .values_list("stf_filename", flat=True)[: fastmon_settings.SAMPLING_SWEEP_LIMIT]
    )
    enqueue_sampling(names)
    return len(names)


# -- dead letters -------------------------------------------------------------------------------


class NotPending(Exception):
    """The dead letter was already replayed or discarded."""


def replay_dead_letter(letter_id: int, by: str) -> MessageResult:
    """Ingest a dead letter's body again, as it arrived (after a fix upstream or here). If it
    is refused again, the letter stays pending, one occurrence more, and the result says why."""
    with transaction.atomic():
        letter = _pending_letter(letter_id)
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
        raise NotPending(f"dead letter {letter_id} was already {letter.status}")
    return letter


def _resolve(letter: DeadLetter, status: str, by: str) -> None:
    letter.status, letter.resolved_at, letter.resolved_by = status, timezone.now(), by
    letter.save(update_fields=["status", "resolved_at", "resolved_by"])


# -- subscribers --------------------------------------------------------------------------------


def routable_subscribers() -> list[Subscriber]:
    """Subscribers that take new messages. Those whose lease ran out are set inactive first."""
    expire_subscribers()
    return list(Subscriber.objects.filter(active=True))


def expire_subscribers() -> int:
    """Set inactive the subscribers whose lease ran out; return how many."""
    return Subscriber.objects.filter(active=True, expires_at__lte=timezone.now()).update(
        active=False, last_error="lease expired: no subscribe request renewed it"
    )


def save_subscriber(
    subscription: Subscription, by: str, subscriber_id: int | None = None
) -> Subscriber:
    """Register (or replace, by name or by id) a subscriber and renew its lease."""
    lease = subscription.lease_seconds()
    values = {
        "name": subscription.name,
        "destination": subscription.destination,
        "filters": subscription.stored_filters(),
        "fraction": subscription.fraction,
        "active": subscription.active,
        "idle_expiry_s": lease,
        "expires_at": timezone.now() + timedelta(seconds=lease) if lease else None,
        "last_error": "",
        "updated_by": by,
    }
    lookup = {"pk": subscriber_id} if subscriber_id else {"name": subscription.name}
    subscriber, _ = Subscriber.objects.update_or_create(
        **lookup, defaults=values, create_defaults={**values, "created_by": by}
    )
    # What is still undelivered goes where the subscriber now says, tried again at once: a
    # renewal says it is there.
    OutboxMessage.objects.undelivered(subscriber.pk).update(
        destination=subscriber.destination, attempts=0, next_attempt_at=None
    )
    return subscriber


def remove_subscriber(name: str) -> bool:
    """Remove a subscriber and its undelivered messages; what it was sent stays, unlinked.
    False if there was none."""
    subscriber = Subscriber.objects.filter(name=name).first()
    if subscriber is None:
        return False
    OutboxMessage.objects.undelivered(subscriber.pk).delete()
    subscriber.delete()
    return True


def _apply_control_request(message: InboundMessage) -> MessageResult:
    """A subscribe or unsubscribe request from CONTROL_DESTINATION, answered on its reply-to
    through the outbox (so the answer leaves only once the change is committed). A request
    that cannot be used, or that the database refuses (in a savepoint, so the batch goes on),
    is dead-lettered and its sender told why."""
    data: dict[str, Any] = {}
    try:
        data = decode_body(message.raw_body, fastmon_settings.MAX_BODY_BYTES)
        request = parse_control_request(data)
        with transaction.atomic():
            return _apply_control(message, request)
    except MessageError as exc:
        code, reason, errors = exc.code, exc.reason, {"body": exc.reason}
    except RequestError as exc:
        code, reason, errors = DeadLetter.Reason.INVALID, str(exc), exc.errors
    except (DataError, IntegrityError) as exc:
        code, reason = DeadLetter.Reason.REJECTED, f"the database refused it: {exc}".strip()
        errors = {"body": reason}
    kind = data.get("msg_type") if data.get("msg_type") in _CONTROL_TYPES else "control"
    _reply(message, kind, {"ok": False, "error": reason, "errors": errors})
    return _dead_letter(message, code, f"{kind}: {reason}", kind)


_CONTROL_TYPES = {"subscribe", "unsubscribe"}


def _apply_control(
    message: InboundMessage, request: Subscription | Unsubscription
) -> MessageResult:
    if isinstance(request, Subscription):
        subscriber = save_subscriber(request, by="stomp control")
        _reply(message, "subscribe", {"ok": True, "subscriber": _subscriber_summary(subscriber)})
        return MessageResult(Outcome.STORED, "subscribe", f"subscriber {subscriber.name} saved")
    removed = remove_subscriber(request.name)
    _reply(message, "unsubscribe", {"ok": True, "name": request.name, "removed": removed})
    return MessageResult(Outcome.STORED, "unsubscribe", f"subscriber {request.name} removed")


def _subscriber_summary(subscriber: Subscriber) -> dict[str, Any]:
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
        body=json.dumps({"msg_type": f"{request}_reply", **result}),
        headers={"correlation-id": correlation} if correlation else {},
    )


# -- live events --------------------------------------------------------------------------------

# Writers of live events take this transaction lock in turn, from their first event to their
# commit, so sequence numbers follow commit order: a client that has seen N has seen all before.
_LIVE_EVENTS_LOCK = 0x66A57_0E7E


def record_live_events(events: list[LiveEvent]) -> None:
    """Store live events with the data they describe and push them to the live pages once the
    transaction commits (a push that fails loses nothing: clients read the gap back)."""
    if not events:
        return
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LIVE_EVENTS_LOCK])
    LiveEvent.objects.bulk_create(events)
    frames = [live.event_frame(event) for event in events]
    transaction.on_commit(lambda: live.broadcast(frames))
