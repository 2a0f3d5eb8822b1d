"""run_fastmon's quality thread: every CHECK_INTERVAL_S, the time-window checks of the running
runs (what only the passing of time reveals: a stall, a rate drop, dead letters piling up)."""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connection

from fastmon.conf import fastmon_settings
from fastmon.quality.evaluate import on_tick

logger = logging.getLogger("fastmon.quality")


class QualityTicker:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if not fastmon_settings.CHECKS:
            return
        self.thread = threading.Thread(target=self._loop, name="fastmon-quality", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(timeout=fastmon_settings.STOP_TIMEOUT_S)

    def _loop(self) -> None:
        """Own database connection (Django's are per thread), dropped after a failure."""
        try:
            while not self.stopping.wait(fastmon_settings.CHECK_INTERVAL_S):
                try:
                    on_tick()
                except DatabaseError as exc:
                    logger.warning("quality checks skipped a tick: %s", exc)
                    connection.close()
                except Exception:  # a check's bug must not end the thread
                    logger.exception("quality checks failed on a tick")
        finally:
            connection.close()
