"""What every background loop of run_fastmon is: a daemon thread that does one iteration at a
time until stopped, beside the consumer's batch/ack loop and never on it.

A loop says what one iteration does (``iterate``, returning how long to wait before the next),
when it runs at all (``enabled``) and how it waits after a failure (``retry_delay``). The base
keeps the rest the same for all: an iteration that fails is logged (a warning for the failures
the loop expects, with a traceback for the others), waited out and never ends the thread; each
thread has its own database connection (Django's are per thread), closed after a database error
and at the end; ``stop`` returns by the caller's deadline whatever the thread is doing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import ClassVar

from django.db import DatabaseError, connection

from fastmon.retry import backoff_delay


class Loop:
    name: ClassVar[str]  # the thread's name, "fastmon-<name>"
    what: ClassVar[str]  # what its log lines call it
    logger: ClassVar[logging.Logger]
    # Failures logged without a traceback: the database or a server being away.
    expected: ClassVar[tuple[type[Exception], ...]] = (DatabaseError,)
    # At most this long is waited for an iteration in hand at a stop (None: up to the deadline).
    stop_within: ClassVar[float | None] = None

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def enabled(self) -> bool:
        """Whether ``start`` starts a thread (a loop the settings turn off starts none)."""
        return True

    def first_wait(self) -> float:
        """Seconds before the first iteration."""
        return 0.0

    def iterate(self) -> float:
        """One round of the loop's work; returns the seconds to wait before the next."""
        raise NotImplementedError

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failure in a row (0-based)."""
        return backoff_delay(attempt)

    def failed(self, exc: Exception, delay: float) -> None:
        """Log a failed iteration."""
        log = self.logger.warning if isinstance(exc, self.expected) else self.logger.exception
        log("%s waits %.1fs: %s", self.what, delay, exc)

    def finish(self) -> None:
        """Called in the thread once the loop has stopped, before its connection closes."""

    def start(self) -> None:
        if self.enabled():
            self.thread = threading.Thread(target=self._run, name=f"fastmon-{self.name}",
                                           daemon=True)  # fmt: skip
            self.thread.start()

    def stop(self, deadline: float) -> None:
        """Stop, waiting for the iteration in hand until ``deadline`` (``time.monotonic()``);
        a daemon still busy then is left to end with the process."""
        if self.thread is not None:
            self.stopping.set()
            if self.stop_within is not None:
                deadline = min(deadline, time.monotonic() + self.stop_within)
            self.thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        attempt, delay = 0, self.first_wait()
        try:
            while not self.stopping.wait(delay):
                try:
                    delay = self.iterate()
                    attempt = 0
                except Exception as exc:  # the thread must outlive anything one round meets
                    delay = self.retry_delay(attempt)
                    attempt += 1
                    self.failed(exc, delay)
                    if isinstance(exc, DatabaseError):
                        connection.close()
            self.finish()
        finally:
            connection.close()
