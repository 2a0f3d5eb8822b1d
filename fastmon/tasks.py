"""Celery tasks: thin wrappers around one service each, configured so nothing is lost.

``acks_late`` with ``reject_on_worker_lost``: a task whose worker dies is handed to another
worker, not dropped; ``sample_stfs`` counts attempts in the database, so a task that keeps
killing workers ends with its STFs marked failed instead of looping. Database outages are
retried with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from celery import shared_task
from django.db import InterfaceError, OperationalError

from fastmon import metrics
from fastmon.outbox.relay import prune_outbox, relay_outbox
from fastmon.sampling import dispatch, service
from fastmon.subscribers.service import expire_subscribers
from fastmon.swf_monitor.client import MonitorUnavailable
from fastmon.swf_monitor.feed import FEED_BATCH, relay_to_monitor
from fastmon.transport.stomp import StompTransport

logger = logging.getLogger("fastmon.tasks")

RELIABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 20,
}


@shared_task(name="fastmon.sample_stfs", **RELIABLE)
def sample_stfs(stf_filenames: list[str]) -> dict[str, int]:
    with metrics.SAMPLING_SECONDS.time():
        return asdict(service.sample_stfs(stf_filenames))


@shared_task(name="fastmon.relay_outbox", **RELIABLE)
def relay_outbox_task() -> int:
    """Publish what the outbox holds, for sites that relay from workers (run_fastmon also can)."""
    transport = StompTransport()
    transport.connect()
    try:
        sent = total = relay_outbox(transport)
        while sent:
            sent = relay_outbox(transport)
            total += sent
        return total
    finally:
        transport.disconnect()


@shared_task(name="fastmon.relay_to_monitor", **RELIABLE)
def relay_to_monitor_task() -> int:
    """Register pending samples in swf-monitor, for sites that relay from workers; while it is
    away the rows wait for the next call."""
    try:
        return relay_to_monitor(FEED_BATCH)
    except MonitorUnavailable as exc:
        logger.warning("swf-monitor feed: %s", exc)
        return 0


@shared_task(name="fastmon.periodic_checks", **RELIABLE)
def periodic_checks() -> dict[str, int]:
    """The hook for Celery beat (README): checks that catch what fell through the cracks, and
    housekeeping."""
    return {
        "enqueued_for_sampling": dispatch.sweep_unsampled(),
        "subscribers_lapsed": expire_subscribers(),
        "outbox_rows_pruned": prune_outbox(),
    }


def _send_to_workers(stf_filenames: list[str]) -> None:
    # retry=False: a consumer must never wait on a sick Celery broker.
    sample_stfs.apply_async((stf_filenames,), retry=False)


dispatch.register_sender(_send_to_workers, eager=lambda: sample_stfs.app.conf.task_always_eager)
