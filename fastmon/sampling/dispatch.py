"""How stored STFs reach sampling, and who samples (``SAMPLING_WORKERS``).

With Celery, ingest hands chunks of STF names to the workers. The tasks module registers its
sender here when it is loaded (``fastmon.apps`` loads it when Celery is installed), so the
domain never imports Celery; the hand-off goes through a bounded queue and a thread of its own,
so a sick Celery broker never stalls ingest; a task's chunk holds the STFs of one lane (one
remote host, or this machine: ``lanes``). Without Celery, run_fastmon's sampler thread
(``runtime.loops.Sampler``) finds the unsampled STFs in the database itself, but for those of
a lane still at work. A chunk that cannot be handed over loses nothing: the periodic sweep
finds STFs left unsampled.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import reduce
from operator import or_

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import StfFile
from fastmon.sampling.lanes import busy_prefixes, by_lane

logger = logging.getLogger("fastmon.sampling")

Sender = Callable[[list[str]], None]
_sender: Sender | None = None
_eager: Callable[[], bool] = lambda: False  # noqa: E731

CELERY, RUN_FASTMON = "celery", "run_fastmon"


def register_sender(sender: Sender, eager: Callable[[], bool]) -> None:
    """Send chunks of STF file names to the workers with ``sender`` (``fastmon.tasks``);
    ``eager()`` says the tasks run where they are sent (no broker to wait on)."""
    global _sender, _eager
    _sender, _eager = sender, eager


def workers() -> str:
    """Who samples: ``CELERY`` or ``RUN_FASTMON`` (``SAMPLING_WORKERS``, "auto" resolved)."""
    chosen = fastmon_settings.SAMPLING_WORKERS
    if chosen in (CELERY, RUN_FASTMON):
        return chosen
    if chosen != "auto":
        raise ValueError(f"SAMPLING_WORKERS must be auto, celery or run_fastmon, not {chosen!r}")
    configured = getattr(settings, "CELERY_BROKER_URL", None) or getattr(
        settings, "CELERY_TASK_ALWAYS_EAGER", False
    )
    return CELERY if configured and importlib.util.find_spec("celery") else RUN_FASTMON


def samplable_statuses() -> list[str]:
    """The statuses of STFs waiting for sampling, from SAMPLE_ON."""
    return [
        StfFile.Status.READY if kind == "stf_ready" else StfFile.Status.ANNOUNCED
        for kind in fastmon_settings.SAMPLE_ON
    ]


def enqueue_sampling(stf_filenames: Sequence[str]) -> None:
    """Hand STFs to the Celery workers in chunks of SAMPLING_TASK_CHUNK, without waiting."""
    if not fastmon_settings.SAMPLING_ENABLED or not stf_filenames or workers() != CELERY:
        return
    chunk = fastmon_settings.SAMPLING_TASK_CHUNK
    chunks = [list(stf_filenames[i : i + chunk]) for i in range(0, len(stf_filenames), chunk)]
    if _eager():
        for names in chunks:  # the tasks run here and now (the demo): no broker to wait on
            _send(names)
        return
    _handoff.put(chunks)


def _send(names: list[str]) -> None:
    """A task for each lane's STFs of the chunk."""
    try:
        if _sender is None:
            raise RuntimeError("no sampling task registered (is Celery installed?)")
        for lane in by_lane(names):
            _sender(lane)
    except Exception as exc:
        logger.exception("could not enqueue %d STFs for sampling", len(names))
        if isinstance(exc, DatabaseError):
            connection.close()  # a new one for the next chunk


class Handoff:
    """Chunks waiting for the Celery broker, sent from a thread of this process; past
    SAMPLING_HANDOFF_QUEUE chunks, new ones are left to the sweep."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[list[str]] | None = None
        self._lock = threading.Lock()

    def put(self, chunks: list[list[str]]) -> None:
        pending = self._queue()
        for names in chunks:
            try:
                pending.put_nowait(names)
            except queue.Full:
                logger.warning("sampling hand-off full: %d STFs left to the periodic sweep",
                               len(names))  # fmt: skip

    def _queue(self) -> queue.Queue[list[str]]:
        with self._lock:
            if self._chunks is None:
                self._chunks = queue.Queue(fastmon_settings.SAMPLING_HANDOFF_QUEUE)
                threading.Thread(target=self._send_all, args=(self._chunks,),
                                 name="fastmon-sampling-handoff", daemon=True).start()  # fmt: skip
            return self._chunks

    @staticmethod
    def _send_all(chunks: queue.Queue[list[str]]) -> None:
        while True:
            _send(chunks.get())


_handoff = Handoff()


def _forget_parents_handoff() -> None:
    """A forked process (the ingest process) has none of its parent's threads."""
    global _handoff
    _handoff = Handoff()


os.register_at_fork(after_in_child=_forget_parents_handoff)


def due_for_sampling(limit: int, received_before: datetime | None = None) -> list[str]:
    """The oldest STFs waiting for sampling (received before a time, if given), for run_fastmon's
    sampler and the sweep; not those of a lane at work (they wait for it)."""
    waiting = StfFile.objects.filter(sampled_at__isnull=True, status__in=samplable_statuses())
    if busy := busy_prefixes():
        waiting = waiting.exclude(reduce(or_, (Q(file_url__startswith=p) for p in busy)))
    if received_before is not None:
        waiting = waiting.filter(received_at__lt=received_before)
    return list(waiting.order_by("id").values_list("stf_filename", flat=True)[:limit])


def sweep_unsampled() -> int:
    """Enqueue STFs that should have been sampled by now and were not (lost enqueue, lost
    task); the periodic task calls it. Returns how many were enqueued."""
    cutoff = timezone.now() - timedelta(seconds=fastmon_settings.SAMPLING_SWEEP_AFTER_S)
    names = due_for_sampling(fastmon_settings.SAMPLING_SWEEP_LIMIT, received_before=cutoff)
    enqueue_sampling(names)
    return len(names)
