"""Celery tasks: thin wrappers around services, configured so nothing is lost.

``acks_late`` with ``reject_on_worker_lost``: a task whose worker dies is handed to another
worker, not dropped; ``sample_stfs`` counts attempts in the database, so a task that keeps
killing workers ends with its STFs marked failed instead of looping. Database outages are
retried with exponential backoff and jitter.
"""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from django.db import InterfaceError, OperationalError

from fastmon import metrics, services
from fastmon.messaging.outbox import relay_outbox
from fastmon.messaging.transports import StompTransport

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
        return asdict(services.sample_stfs(stf_filenames))


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


@shared_task(name="fastmon.periodic_checks", **RELIABLE)
def periodic_checks() -> dict[str, int]:
    """The hook for Celery beat (README): checks that catch what fell through the cracks."""
    return {"enqueued_for_sampling": services.sweep_unsampled()}
