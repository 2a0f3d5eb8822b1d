"""The swf-monitor feed: samples registered in swf-monitor's fastmon-files table, POSTed in
order from a thread of their own (``MonitorFeed``) or a Celery task, so a slow monitor never
delays ingest."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import OutboxMessage
from fastmon.outbox import swf_monitor
from fastmon.outbox.relay import count_attempt
from fastmon.retry import backoff_delay

logger = logging.getLogger("fastmon.outbox")

# Rows POSTed per transaction: their locks are held across the requests, so a few at a time.
FEED_BATCH = 50


def relay_to_monitor(limit: int) -> int:
    """POST up to ``limit`` due swf-monitor rows in order; return how many were tried.

    A 2xx that echoes the sample, or a 400 for a sample swf-monitor already has (a POST whose
    answer was lost), counts as sent. Any other 400 (an STF it does not know) is a refusal,
    recorded on the row with swf-monitor's words, final. Anything else swf-monitor answers
    (5xx, another 4xx, an answer that is not the sample) is retried for that row alone, with
    backoff, so one bad row never holds up the rest. When swf-monitor cannot be reached at all,
    ``MonitorUnavailable`` propagates (after recording the attempt): the caller waits.
    """
    now = timezone.now()
    unreachable: swf_monitor.MonitorUnavailable | None = None
    tried = 0
    with transaction.atomic():
        rows = (
            OutboxMessage.objects.pending(OutboxMessage.Transport.SWF_MONITOR)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .select_for_update(skip_locked=True)
            .order_by("id")[:limit]
        )
        for row in rows:
            tried += 1
            try:
                refusal = _register_in_monitor(row)
            except swf_monitor.MonitorUnavailable as exc:
                if not exc.answered:
                    count_attempt([row], str(exc))
                    unreachable = exc
                    break
                delay = backoff_delay(row.attempts, cap=fastmon_settings.OUTBOX_RETRY_MAX_S)
                logger.warning("swf-monitor: %s retried in %.0fs: %s", row.subject, delay, exc)
                count_attempt([row], str(exc), next_attempt_at=now + timedelta(seconds=delay))
                continue
            if refusal:
                logger.warning("swf-monitor refused %s: %s", row.subject, refusal)
                count_attempt([row], refusal, failed_at=timezone.now())
            else:
                count_attempt([row], "", sent_at=timezone.now())
    if unreachable is not None:
        raise unreachable
    return tried


def _register_in_monitor(row: OutboxMessage) -> str:
    """POST one sample; return swf-monitor's refusal, or "" once it has the sample."""
    answer = swf_monitor.call("POST", row.destination, json.loads(row.body))
    if answer.ok:
        echoed = answer.json()
        if isinstance(echoed, dict) and echoed.get("tf_filename") == row.subject:
            return ""
        raise swf_monitor.MonitorUnavailable(
            f"HTTP {answer.status} without the sample in it: {answer.text[:200]!r}",
            answered=True,
        )
    if answer.status != 400:
        raise swf_monitor.MonitorUnavailable(
            f"HTTP {answer.status}: {answer.text[:200]}", answered=True
        )
    if swf_monitor.fastmon_file_registered(row.subject):
        return ""
    return f"HTTP 400: {answer.text[:1000]}"


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
        """Briefly: a POST in flight that is cut short is sent again by the next run."""
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(timeout=2.0)

    def _loop(self) -> None:
        """Own database connection (Django's are per thread), closed after a failure."""
        attempt, delay = 0, 0.0
        try:
            while not self.stopping.wait(delay):
                try:
                    tried = relay_to_monitor(FEED_BATCH)
                    attempt = 0
                    delay = 0.0 if tried == FEED_BATCH else fastmon_settings.OUTBOX_POLL_S
                except Exception as exc:  # the thread must outlive anything one round meets
                    delay = backoff_delay(attempt, cap=fastmon_settings.OUTBOX_RETRY_MAX_S)
                    attempt += 1
                    expected = isinstance(exc, swf_monitor.MonitorUnavailable | DatabaseError)
                    log = logger.warning if expected else logger.exception
                    log("swf-monitor feed waits %.1fs: %s", delay, exc)
                    if isinstance(exc, DatabaseError):
                        connection.close()
        finally:
            connection.close()
