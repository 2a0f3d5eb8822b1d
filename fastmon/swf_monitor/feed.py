"""The swf-monitor feed (SWF_MONITOR_FEED): each TF sample registered in swf-monitor's
fastmon-files table before the testbed hears of it, and sample status kept the same on both
sides. From a thread of its own (``fastmon.runtime.loops.MonitorFeed``) or a Celery task, so a
slow monitor never delays ingest.

The hand-off downstream cannot lose a slice: a sample's ``tf_file_registered`` (and every
subscriber's copy) is written *held*; the feed POSTs the sample, and only once swf-monitor has
stored it releases them, carrying swf-monitor's ``tf_file_id`` (the fast-processing agent's
TFSlice needs that FastMonFile to exist). An STF swf-monitor does not know yet (the data agent
registers it) is retried with backoff, the sample shown as waiting; any other refusal is final,
and its held messages are given up with the reason.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Replace
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import OutboxMessage, TfSample
from fastmon.outbox.relay import count_attempt
from fastmon.retry import backoff_delay
from fastmon.statistics.counters import count_status_moves
from fastmon.swf_monitor import client as swf_monitor

logger = logging.getLogger("fastmon.outbox")

# Rows sent per transaction: their locks are held across the requests, so a few at a time.
FEED_BATCH = 50
# STFs whose samples' status is compared with swf-monitor's per round (one GET each).
SYNC_STFS = 20

REGISTER, CHANGE = "fastmon_file", "fastmon_file_status"  # the feed's msg_types


class Waiting(Exception):
    """swf-monitor does not know the sample's STF yet: retried, the sample shown as waiting."""


def relay_to_monitor(limit: int) -> int:
    """Send up to ``limit`` due swf-monitor rows in order; return how many were tried.

    A registration is sent once swf-monitor answers with the sample (or, for a POST whose
    answer was lost, a 400 for a sample it already has): the sample's held messages are then
    released with swf-monitor's ``tf_file_id``. Anything else swf-monitor answers (5xx, another
    4xx, an answer that is not the sample) is retried for that row alone, with backoff, so one
    bad row never holds up the rest. When swf-monitor cannot be reached at all,
    ``MonitorUnavailable`` propagates (after recording the attempt): the caller waits.
    """
    now = timezone.now()
    unreachable: swf_monitor.MonitorUnavailable | None = None
    tried = 0
    with transaction.atomic():
        rows = (
            OutboxMessage.objects.releasable(OutboxMessage.Transport.SWF_MONITOR)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .select_for_update(skip_locked=True)
            .order_by("id")[:limit]
        )
        for row in rows:
            tried += 1
            try:
                refusal = _send(row)
            except (swf_monitor.MonitorUnavailable, Waiting) as exc:
                if isinstance(exc, swf_monitor.MonitorUnavailable) and not exc.answered:
                    count_attempt([row], str(exc))
                    unreachable = exc
                    break
                _retry_later(row, str(exc), now, waiting=isinstance(exc, Waiting))
                continue
            if refusal:
                logger.warning("swf-monitor refused %s: %s", row.subject, refusal)
                _refused(row, refusal)
            else:
                count_attempt([row], "", sent_at=timezone.now())
    if unreachable is not None:
        raise unreachable
    return tried


def _send(row: OutboxMessage) -> str:
    """Send one row; return swf-monitor's refusal, or "" once it took it."""
    if row.msg_type == CHANGE:
        return _change(row)
    answer = swf_monitor.call("POST", row.destination, json.loads(row.body))
    stored = answer.json() if answer.ok else None
    if answer.status == 400:
        stored = swf_monitor.registered_fastmon_file(row.subject)  # a lost answer, resent?
        if stored is None and "stf_file" in (answer.json() or {}):
            raise Waiting(f"swf-monitor does not know the STF yet: {answer.text[:300]}")
        if stored is None:
            return f"HTTP 400: {answer.text[:1000]}"
    elif not answer.ok:
        raise _unexpected(answer)
    if not isinstance(stored, dict) or stored.get("tf_filename") != row.subject:
        raise swf_monitor.MonitorUnavailable(
            f"HTTP {answer.status} without the sample in it: {answer.text[:200]!r}",
            answered=True,
        )
    _registered(row.subject, str(stored.get("tf_file_id") or ""))
    return ""


def _change(row: OutboxMessage) -> str:
    """A sample's status change, PATCHed to its row in swf-monitor."""
    monitor_id = (
        TfSample.objects.filter(tf_filename=row.subject)
        .values_list("monitor_file_id", flat=True)
        .first()
    )
    if monitor_id is None:
        return "the sample is not registered in swf-monitor"
    path = swf_monitor.fastmon_file_path(str(monitor_id))
    answer = swf_monitor.call("PATCH", path, json.loads(row.body))
    if answer.ok:
        return ""
    if answer.status in (400, 404):
        return f"HTTP {answer.status}: {answer.text[:1000]}"
    raise _unexpected(answer)


def _unexpected(answer: swf_monitor.Answer) -> swf_monitor.MonitorUnavailable:
    """An answer from swf-monitor that may change: this row is retried."""
    return swf_monitor.MonitorUnavailable(
        f"HTTP {answer.status}: {answer.text[:200]}", answered=True
    )


def _registered(tf_filename: str, monitor_id: str) -> None:
    """swf-monitor has the sample: note its id, and release what waited for it, carrying that
    id instead of fastmon's own."""
    own_id = TfSample.objects.filter(tf_filename=tf_filename).values_list("tf_file_id", flat=True)
    own = str(own_id.first() or "")
    TfSample.objects.filter(tf_filename=tf_filename).update(
        monitor_state=TfSample.InMonitor.REGISTERED, monitor_file_id=monitor_id or None
    )
    held = OutboxMessage.objects.filter(
        subject=tf_filename, held=True, sent_at__isnull=True, failed_at__isnull=True
    )
    if own and monitor_id:
        held.update(held=False, body=Replace(F("body"), Value(own), Value(monitor_id)))
    else:
        held.update(held=False)


def _refused(row: OutboxMessage, refusal: str) -> None:
    now = timezone.now()
    count_attempt([row], refusal, failed_at=now)
    if row.msg_type == REGISTER:
        TfSample.objects.filter(tf_filename=row.subject).update(
            monitor_state=TfSample.InMonitor.REFUSED
        )
        OutboxMessage.objects.filter(subject=row.subject, held=True, failed_at__isnull=True).update(
            failed_at=now, last_error=f"swf-monitor refused the sample: {refusal}"[:2000]
        )


def _retry_later(row: OutboxMessage, error: str, now: datetime, waiting: bool) -> None:
    """Try the row again after a backoff; ``waiting``: swf-monitor does not know its STF yet."""
    delay = backoff_delay(row.attempts, cap=fastmon_settings.OUTBOX_RETRY_MAX_S)
    logger.warning("swf-monitor: %s retried in %.0fs: %s", row.subject, delay, error)
    count_attempt([row], error, next_attempt_at=now + timedelta(seconds=delay))
    if waiting:
        TfSample.objects.filter(tf_filename=row.subject).update(
            monitor_state=TfSample.InMonitor.WAITING
        )


def sync_from_monitor(limit: int = SYNC_STFS) -> int:
    """Bring swf-monitor's status changes of registered samples into fastmon (the
    fast-processing agent moves them along there): samples not yet final, least recently
    compared first, one GET per STF. Returns how many samples changed."""
    open_samples = TfSample.objects.filter(
        monitor_state=TfSample.InMonitor.REGISTERED,
        status__in=[TfSample.Status.REGISTERED, TfSample.Status.PROCESSING],
    )
    stfs: list[str] = []
    ordered = open_samples.order_by(F("monitor_checked_at").asc(nulls_first=True), "id")
    for name in ordered.values_list("stf__stf_filename", flat=True)[: limit * 20]:
        if name not in stfs:
            stfs.append(name)
        if len(stfs) == limit:
            break
    changed = 0
    known = set(TfSample.Status.values)
    for stf in stfs:
        theirs = {
            row.get("tf_filename"): row.get("status")
            for row in swf_monitor.fastmon_files(stf_filename=stf)
        }
        with transaction.atomic():
            moves = []
            for sample in open_samples.filter(stf__stf_filename=stf).select_for_update():
                status = theirs.get(sample.tf_filename)
                if status in known and status != sample.status:
                    moves.append((sample.run_id, sample.status, status))
                    sample.status = status
                sample.monitor_checked_at = timezone.now()
                sample.save(update_fields=["status", "monitor_checked_at", "updated_at"])
            count_status_moves(moves)
            changed += len(moves)
    return changed
