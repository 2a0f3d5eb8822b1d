"""The broker relay: deliver committed outbox rows, then mark them sent.

Two transports. Broker rows (``tf_file_registered`` on PUBLISH_DESTINATION, subscribers'
copies, control replies) go out from run_fastmon's loop (``relay_outbox``, here); swf-monitor
rows (its fastmon-files table) are POSTed from a thread of their own (``feed.MonitorFeed``), so a
slow monitor never delays ingest.

Broker rows are sent in ``id`` order per destination, each destination's rows confirmed by a
receipt of their own (all sent at once, then all answers awaited): a destination the broker
refuses (a subscriber's temporary queue gone, an ACL) backs off alone and the others go on.
Rows are locked while they are sent, so two relays never send the same rows at once. A crash
between the receipt and the commit sends those rows again: delivery is at least once, and every
message carries a natural key (``tf_filename``) that makes a repeat recognisable.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from django.db import connection, transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.models import OutboxMessage, Subscriber, TfSample
from fastmon.retry import backoff_delay
from fastmon.statistics.counters import count_published
from fastmon.transport.base import BatchAnswer, Outgoing

logger = logging.getLogger("fastmon.outbox")


class Sender(Protocol):
    """What the relay needs of a transport."""

    @property
    def connected(self) -> bool: ...

    def send_batches(
        self, batches: Sequence[Sequence[Outgoing]], timeout: float = 10.0
    ) -> list[BatchAnswer]: ...


def relay_outbox(transport: Sender, limit: int | None = None) -> int:
    """Send up to ``limit`` pending broker rows; return how many went out (0 when the broker
    is away, or another relay is at work)."""
    if not transport.connected:
        return 0
    limit = limit or fastmon_settings.OUTBOX_BATCH_SIZE
    now = timezone.now()
    rows = OutboxMessage.objects.releasable(OutboxMessage.Transport.BROKER)
    # One query when there is nothing to send, the common case: the transaction below takes
    # four round trips, and run_fastmon's loop (which acks and hands batches to ingest) waits
    # on them every OUTBOX_POLL_S.
    if not rows.exists():
        return 0
    with transaction.atomic():
        if not _relay_lock():
            return 0
        # A destination in backoff keeps all its rows back, so its order holds when it returns.
        waiting = rows.filter(next_attempt_at__gt=now).values("destination")
        due = list(rows.exclude(destination__in=waiting).select_for_update().order_by("id")[:limit])
        if not due:
            return 0
        by_destination: dict[str, list[OutboxMessage]] = {}
        for row in due:
            by_destination.setdefault(row.destination, []).append(row)
        groups = list(by_destination.values())
        answers = transport.send_batches(
            [
                [Outgoing(row.destination, row.body, row.headers) for row in group]
                for group in groups
            ],
            timeout=fastmon_settings.OUTBOX_RECEIPT_TIMEOUT_S,
        )
        taken = [row for group, answer in zip(groups, answers, strict=True) if answer is True
                 for row in group]  # fmt: skip
        _mark_sent(taken, now)
        timeout = fastmon_settings.OUTBOX_RECEIPT_TIMEOUT_S
        for group, answer in zip(groups, answers, strict=True):
            if isinstance(answer, str):
                _defer(group, answer, now)
            elif answer is None and taken and transport.connected:
                # The broker answered the others: this destination is stuck (flow control).
                _defer(group, f"no answer from the broker within {timeout:.0f}s", now)
            elif answer is None:
                logger.warning("outbox: %d messages wait for the broker", len(group))
                count_attempt(group, "no answer from the broker (connection lost?)")
    return len(taken)


def _relay_lock() -> bool:
    """One relay at a time (run_fastmon, fastmon_relay, a Celery task), without waiting: the
    one that finds it taken has nothing to do, and per-destination order holds."""
    if connection.vendor != "postgresql":
        return True  # SQLite (the demo) writes one transaction at a time anyway
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RELAY_LOCK])
        return cursor.fetchone()[0]


# An advisory lock key of fastmon's own ("fmrl").
RELAY_LOCK = 0x666D726C


def count_attempt(rows: list[OutboxMessage], error: str, **also: object) -> None:
    OutboxMessage.objects.filter(pk__in=[row.pk for row in rows]).update(
        attempts=F("attempts") + 1, last_error=error, **also
    )


def _defer(group: list[OutboxMessage], error: str, now: datetime) -> None:
    """The broker refused this destination: retry it later, alone. Subscribers' copies and
    control replies are given up after SUBSCRIBER_MAX_FAILURES failures in a row (the
    subscriber loses its subscription); the testbed's own stream never is."""
    destination = group[0].destination
    # Rows of one destination are tried together: the oldest has seen every failure since
    # its destination last took a message (a renewed subscription starts again from 0).
    failures = group[0].attempts + 1
    if failures >= fastmon_settings.SUBSCRIBER_MAX_FAILURES and (
        destination != fastmon_settings.PUBLISH_DESTINATION
    ):
        reason = f"destination kept failing: {error}"
        subscribers = Subscriber.objects.filter(
            pk__in={row.subscriber_id for row in group}, destination=destination
        )
        for subscriber_id in subscribers.values_list("pk", flat=True):
            drop_subscriber_backlog(subscriber_id, reason)
        given_up = OutboxMessage.objects.pending(OutboxMessage.Transport.BROKER).filter(
            pk__in=[r.pk for r in group]
        )
        given_up.update(failed_at=now, last_error=reason)  # what is left: control replies
        return
    delay = backoff_delay(failures - 1, cap=fastmon_settings.OUTBOX_RETRY_MAX_S)
    logger.warning("outbox: %s refused %d messages (failure %d, retry in %.1fs): %s",
                   destination, len(group), failures, delay, error)  # fmt: skip
    count_attempt(group, error, next_attempt_at=now + timedelta(seconds=delay))


def _mark_sent(rows: list[OutboxMessage], now: datetime) -> None:
    if not rows:
        return
    count_attempt(rows, "", sent_at=now, next_attempt_at=None)
    delivered = Counter(row.subscriber_id for row in rows if row.subscriber_id)
    for subscriber_id, count in delivered.items():
        Subscriber.objects.filter(pk=subscriber_id).update(
            delivered_count=F("delivered_count") + count, last_delivery_at=now, last_error=""
        )
    # The last latency stamp of a TF sample: its announcement left.
    published = [
        row.subject
        for row in rows
        if row.subscriber_id is None and row.msg_type == "tf_file_registered"
    ]
    if published:
        with transaction.atomic():  # the first departure is the stamp (a resend is not)
            first = TfSample.objects.filter(tf_filename__in=published, published_at=None)
            stamped = list(first.select_for_update().values_list("pk", "run_id", "created_at"))
            TfSample.objects.filter(pk__in=[pk for pk, _, _ in stamped]).update(published_at=now)
            count_published((run, created, now) for _, run, created in stamped)


def prune_outbox() -> int:
    """Delete rows settled (sent or given up) more than OUTBOX_KEEP_S ago, a bounded number per
    call: the table holds what is pending and a recent history, not every message ever sent."""
    cutoff = timezone.now() - timedelta(seconds=fastmon_settings.OUTBOX_KEEP_S)
    old = OutboxMessage.objects.filter(Q(sent_at__lt=cutoff) | Q(failed_at__lt=cutoff)).values_list(
        "pk", flat=True
    )[:PRUNE_LIMIT]
    deleted, _ = OutboxMessage.objects.filter(pk__in=list(old)).delete()
    return deleted


PRUNE_LIMIT = 50_000


def outbox_lag() -> tuple[int, float | None]:
    """Pending rows of the testbed's stream (PUBLISH_DESTINATION), and the age in seconds of the
    oldest one: what readiness judges. Subscribers' copies and swf-monitor's rows wait on
    parties fastmon does not run, and are given up or retried on their own."""
    stream = OutboxMessage.objects.pending(OutboxMessage.Transport.BROKER).filter(
        destination=fastmon_settings.PUBLISH_DESTINATION, subscriber__isnull=True
    )
    stats = stream.aggregate(pending=Count("id"), oldest=Min("created_at"))
    oldest = stats["oldest"]
    lag = stats["pending"], (timezone.now() - oldest).total_seconds() if oldest else None
    metrics.set_outbox_lag(*lag)
    return lag


def drop_subscriber_backlog(subscriber_id: int, reason: str) -> int:
    """Set a subscriber inactive and give up its undelivered rows, counted as dropped."""
    dropped = OutboxMessage.objects.undelivered(subscriber_id).update(
        failed_at=timezone.now(), last_error=reason
    )
    Subscriber.objects.filter(pk=subscriber_id).update(
        active=False, dropped_count=F("dropped_count") + dropped, last_error=reason
    )
    logger.error("subscriber %s set inactive, %d messages dropped: %s",
                 subscriber_id, dropped, reason)  # fmt: skip
    return dropped
