"""How stored STFs reach the sampling workers, without the domain importing Celery: the tasks
module registers its sender here when it is loaded (``fastmon.apps`` loads it when Celery is
installed). A failure to hand over loses nothing: the periodic sweep finds STFs left unsampled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import StfFile

logger = logging.getLogger("fastmon.ingest")

Sender = Callable[[list[str]], None]
_sender: Sender | None = None


def register_sender(sender: Sender) -> None:
    """Send chunks of STF file names to the workers with ``sender`` (``fastmon.tasks``)."""
    global _sender
    _sender = sender


def enqueue_sampling(stf_filenames: Sequence[str]) -> None:
    """Hand STFs to the sampling workers, in chunks of SAMPLING_TASK_CHUNK."""
    if not fastmon_settings.SAMPLING_ENABLED or not stf_filenames:
        return
    chunk = fastmon_settings.SAMPLING_TASK_CHUNK
    try:
        if _sender is None:
            raise RuntimeError("no sampling task registered (is Celery installed?)")
        for start in range(0, len(stf_filenames), chunk):
            _sender(list(stf_filenames[start : start + chunk]))
    except Exception:
        logger.exception("could not enqueue %d STFs for sampling", len(stf_filenames))


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
