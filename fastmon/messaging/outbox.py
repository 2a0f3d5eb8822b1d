"""The outbox relay: publish committed outbox rows in order, then mark them sent.

Rows are locked while they are sent, so two relays (run_fastmon and a standalone one, or two
consumers) never send the same rows at once and keep their order. A crash between the broker's
receipt and the commit sends those rows again: delivery is at least once, and every outgoing
message carries a natural key (``tf_filename``) that makes a repeat recognisable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from django.db import transaction
from django.db.models import Count, F, Min
from django.utils import timezone

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.messaging.transports import BrokerError, Outgoing
from fastmon.models import OutboxMessage, TfSample

logger = logging.getLogger("fastmon.outbox")


class Sender(Protocol):
    """What the relay needs of a transport."""

    @property
    def connected(self) -> bool: ...

    def send(self, messages: Sequence[Outgoing], timeout: float = 10.0) -> None: ...


def relay_outbox(transport: Sender, limit: int | None = None) -> int:
    """Send up to ``limit`` pending rows; return how many went out (0 when the broker is away)."""
    if not transport.connected:
        return 0
    limit = limit or fastmon_settings.OUTBOX_BATCH_SIZE
    with transaction.atomic():
        rows = list(
            OutboxMessage.objects.select_for_update()
            .filter(sent_at__isnull=True)
            .order_by("id")[:limit]
        )
        if not rows:
            return 0
        pks = [row.pk for row in rows]
        try:
            transport.send(
                [Outgoing(row.destination, row.body, row.headers) for row in rows],
                timeout=fastmon_settings.OUTBOX_RECEIPT_TIMEOUT_S,
            )
        except BrokerError as exc:
            logger.warning("outbox: %d messages wait for the broker: %s", len(rows), exc)
            OutboxMessage.objects.filter(pk__in=pks).update(
                attempts=F("attempts") + 1, last_error=str(exc)
            )
            return 0
        now = timezone.now()
        OutboxMessage.objects.filter(pk__in=pks).update(
            sent_at=now, attempts=F("attempts") + 1, last_error=""
        )
        # The last latency stamp of a TF sample: its announcement left.
        published = [row.subject for row in rows if row.msg_type == "tf_file_registered"]
        TfSample.objects.filter(tf_filename__in=published).update(published_at=now)
    return len(rows)


def outbox_lag() -> tuple[int, float | None]:
    """Pending rows, and the age in seconds of the oldest one."""
    stats = OutboxMessage.objects.filter(sent_at__isnull=True).aggregate(
        pending=Count("id"), oldest=Min("created_at")
    )
    oldest = stats["oldest"]
    lag = stats["pending"], (timezone.now() - oldest).total_seconds() if oldest else None
    metrics.set_outbox_lag(*lag)
    return lag
