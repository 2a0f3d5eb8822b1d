"""The outbox relays: deliver committed outbox rows, then mark them sent.

Two transports. Broker rows (``tf_file_registered`` on PUBLISH_DESTINATION, subscribers'
copies, control replies) go out from run_fastmon's loop (``relay_outbox``); swf-monitor rows
(its fastmon-files table) are POSTed from a thread of their own (``MonitorFeed``), so a slow
monitor never delays ingest.

Broker rows are sent in ``id`` order per destination, each destination's rows confirmed by a
receipt of their own (all sent at once, then all answers awaited): a destination the broker
refuses (a subscriber's temporary queue gone, an ACL) backs off alone and the others go on.
Rows are locked while they are sent, so two relays never send the same rows at once. A crash
between the receipt and the commit sends those rows again: delivery is at least once, and every
message carries a natural key (``tf_filename``) that makes a repeat recognisable.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Min, QuerySet
from django.utils import timezone

from fastmon import metrics, swf_monitor
from fastmon.conf import fastmon_settings
from fastmon.messaging.retry import backoff_delay
from fastmon.messaging.transports import BatchAnswer, Outgoing
from fastmon.models import OutboxMessage, Subscriber, TfSample

logger = logging.getLogger("fastmon.outbox")


class Sender(Protocol):
    """What the relay needs of a transport."""

    @property
    def connected(self) -> bool: ...

    def send_batches(
        self, batches: Sequence[Sequence[Outgoing]], timeout: float = 10.0
    ) -> list[BatchAnswer]: ...


def pending(transport: str) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.filter(
        transport=transport, sent_at__isnull=True, failed_at__isnull=True
    )


def relay_outbox(transport: Sender, limit: int | None = None) -> int:
    """Send up to ``limit`` pending broker rows; return how many went out (0 when the broker
    is away)."""
    if not transport.connected:
        return 0
    limit = limit or fastmon_settings.OUTBOX_BATCH_SIZE
    now = timezone.now()
    rows = pending(OutboxMessage.Transport.BROKER)
    # A destination in backoff keeps all its rows back, so its order holds when it returns.
    waiting = rows.filter(next_attempt_at__gt=now).values("destination")
    with transaction.atomic():
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
        taken: list[OutboxMessage] = []
        unanswered: list[OutboxMessage] = []
        for group, answer in zip(groups, answers, strict=True):
            if answer is True:
                taken += group
            elif answer is None:
                unanswered += group
            else:
                _defer(group, answer, now)
        _mark_sent(taken, now)
        if unanswered:
            logger.warning("outbox: %d messages wait for the broker", len(unanswered))
            _count_attempt(unanswered, "no answer from the broker (connection lost?)")
    return len(taken)


def _count_attempt(rows: list[OutboxMessage], error: str, **also: object) -> None:
    OutboxMessage.objects.filter(pk__in=[row.pk for row in rows]).update(
        attempts=F("attempts") + 1, last_error=error, **also
    )


def _defer(group: list[OutboxMessage], error: str, now: datetime) -> None:
    """The broker refused this destination: retry it later, alone. Subscribers' copies and
    control replies are given up after SUBSCRIBER_MAX_FAILURES refusals in a row (the
    subscriber loses its subscription); the testbed's own stream never is."""
    destination = group[0].destination
    failures = group[0].attempts + 1  # the oldest row has seen every failure
    if failures >= fastmon_settings.SUBSCRIBER_MAX_FAILURES and (
        destination != fastmon_settings.PUBLISH_DESTINATION
    ):
        reason = f"destination kept failing: {error}"
        for subscriber_id in {row.subscriber_id for row in group} - {None}:
            drop_subscriber_backlog(subscriber_id, reason)
        given_up = pending(OutboxMessage.Transport.BROKER).filter(pk__in=[r.pk for r in group])
        given_up.update(failed_at=now, last_error=reason)  # what is left: control replies
        return
    delay = backoff_delay(failures - 1, cap=fastmon_settings.OUTBOX_RETRY_MAX_S)
    logger.warning("outbox: %s refused %d messages (failure %d, retry in %.1fs): %s",
                   destination, len(group), failures, delay, error)  # fmt: skip
    _count_attempt(group, error, next_attempt_at=now + timedelta(seconds=delay))


def drop_subscriber_backlog(subscriber_id: int, reason: str) -> int:
    """Set a subscriber inactive and give up its undelivered rows, counted as dropped."""
    dropped = (
        pending(OutboxMessage.Transport.BROKER)
        .filter(subscriber_id=subscriber_id)
        .update(failed_at=timezone.now(), last_error=reason)
    )
    Subscriber.objects.filter(pk=subscriber_id).update(
        active=False, dropped_count=F("dropped_count") + dropped, last_error=reason
    )
    logger.error("subscriber %s set inactive, %d messages dropped: %s",
                 subscriber_id, dropped, reason)  # fmt: skip
    return dropped


def _mark_sent(rows: list[OutboxMessage], now: datetime) -> None:
    if not rows:
        return
    _count_attempt(rows, "", sent_at=now, next_attempt_at=None)
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
        TfSample.objects.filter(tf_filename__in=published).update(published_at=now)


def outbox_lag() -> tuple[int, float | None]:
    """Pending rows, and the age in seconds of the oldest one."""
    stats = OutboxMessage.objects.filter(sent_at__isnull=True, failed_at__isnull=True).aggregate(
        pending=Count("id"), oldest=Min("created_at")
    )
    oldest = stats["oldest"]
    lag = stats["pending"], (timezone.now() - oldest).total_seconds() if oldest else None
    metrics.set_outbox_lag(*lag)
    return lag


# -- swf-monitor --------------------------------------------------------------------------------


def relay_to_monitor(limit: int) -> int:
    """POST up to ``limit`` pending swf-monitor rows in order; return how many were settled.

    Registered (201), or already there (a 400 for a sample swf-monitor has: a POST whose answer
    was lost), counts as sent; any other refusal is recorded on the row with its reason and
    never blocks the rest. ``MonitorUnavailable`` propagates after recording the attempt: the
    caller waits and the rows stay pending.
    """
    unavailable: swf_monitor.MonitorUnavailable | None = None
    settled = 0
    with transaction.atomic():
        rows = (
            pending(OutboxMessage.Transport.SWF_MONITOR)
            .select_for_update(skip_locked=True)
            .order_by("id")[:limit]
        )
        for row in rows:
            try:
                answer = swf_monitor.call("POST", row.destination, json.loads(row.body))
                if not answer.ok and swf_monitor.fastmon_file_registered(row.subject):
                    answer = swf_monitor.Answer(200, "already registered")
            except swf_monitor.MonitorUnavailable as exc:
                _count_attempt([row], str(exc))
                unavailable = exc
                break
            now = timezone.now()
            if answer.ok:
                _count_attempt([row], "", sent_at=now)
            else:
                reason = f"HTTP {answer.status}: {answer.text[:1000]}"
                logger.warning("swf-monitor refused %s: %s", row.subject, reason)
                _count_attempt([row], reason, failed_at=now)
            settled += 1
    if unavailable is not None:
        raise unavailable
    return settled


class MonitorFeed:
    """The thread that keeps swf-monitor's fastmon-files fed while SWF_MONITOR_FEED is on."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    @staticmethod
    def enabled() -> bool:
        return bool(fastmon_settings.SWF_MONITOR_FEED and fastmon_settings.SWF_MONITOR_URL)

    def start(self) -> None:
        if self.enabled():
            self.thread = threading.Thread(target=self._loop, name="fastmon-feed", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(timeout=fastmon_settings.SWF_MONITOR_TIMEOUT_S * 2)

    def _loop(self) -> None:
        """Own database connection (Django's are per thread), closed after a failure."""
        attempt, delay = 0, 0.0
        try:
            while not self.stopping.wait(delay):
                try:
                    limit = 50
                    settled = relay_to_monitor(limit)
                    attempt = 0
                    delay = 0.0 if settled == limit else fastmon_settings.OUTBOX_POLL_S
                except (swf_monitor.MonitorUnavailable, DatabaseError) as exc:
                    delay = backoff_delay(attempt, cap=fastmon_settings.OUTBOX_RETRY_MAX_S)
                    attempt += 1
                    logger.warning("swf-monitor feed waits %.1fs: %s", delay, exc)
                    if isinstance(exc, DatabaseError):
                        connection.close()
        finally:
            connection.close()
