"""run_fastmon's own sampler, for a site without Celery (``SAMPLING_WORKERS``): a thread that
samples the oldest unsampled STFs a chunk at a time with the same service and ledger as the
Celery task. It reads the database, not a hand-off, so nothing is lost across restarts, and it
runs beside the consumer's loop, never on the ack path."""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connection

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.retry import backoff_delay
from fastmon.sampling.dispatch import due_for_sampling
from fastmon.sampling.service import sample_stfs

logger = logging.getLogger("fastmon.sampling")


class Sampler:
    """Samples until ``stop()``; a chunk in hand is finished first (bounded by one chunk)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="fastmon-sampler", daemon=True)
        self.thread.start()

    def stop(self, timeout: float) -> None:
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(timeout)

    def _loop(self) -> None:
        """Own database connection (Django's are per thread), closed after a failure."""
        attempt = 0
        try:
            while not self.stopping.is_set():
                try:
                    sampled = self.round()
                    attempt = 0
                except Exception as exc:  # the thread must outlive anything one round meets
                    delay = backoff_delay(attempt)
                    attempt += 1
                    log = logger.warning if isinstance(exc, DatabaseError) else logger.exception
                    log("sampler waits %.1fs: %s", delay, exc)
                    connection.close()
                    self.stopping.wait(delay)
                    continue
                if not sampled:
                    self.stopping.wait(fastmon_settings.SAMPLING_POLL_S)
        finally:
            connection.close()

    @staticmethod
    def round() -> int:
        """Sample one chunk of the oldest waiting STFs; return how many there were."""
        names = due_for_sampling(fastmon_settings.SAMPLING_TASK_CHUNK)
        if names:
            with metrics.SAMPLING_SECONDS.time():
                sample_stfs(names)
        return len(names)
