"""Ingest beside the consumer's loop: in order, batch after batch, in a forked child process
(``IngestProcess``, run_fastmon) or in the consumer's own thread (``InlineIngest``, a consumer
that shares its process). Either answers each batch with its tally or the exception it raised.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import queue
import signal
import threading
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from multiprocessing.connection import Connection

from django.db import DatabaseError, connections

from fastmon.conf import fastmon_settings
from fastmon.database.outages import TRANSIENT_DB_ERRORS, refresh_db_connections
from fastmon.inbound.messages import InboundMessage
from fastmon.ingest.pipeline import ReadBatch, ingest_read, read_batch
from fastmon.runtime.startup import STOP_SIGNALS
from fastmon.runtime.summary import Tally
from fastmon.transport.base import Delivery

logger = logging.getLogger("fastmon.consumer")

# What crosses to the ingest process: per frame its body, headers and time of arrival.
Frames = list[tuple[bytes, Mapping[str, str], float]]
# An ingest's answer: the batch's tally, or the exception it raised.
IngestOutcome = Tally | Exception


def frames_of(batch: list[Delivery]) -> Frames:
    return [(d.body, d.headers, d.received_at) for d in batch]


def _read(frames: Frames) -> ReadBatch | Exception:
    """A batch through ``read_batch``, the half of ingest that needs no database."""
    try:
        return read_batch(
            InboundMessage(body, headers, datetime.fromtimestamp(received_at, UTC))
            for body, headers, received_at in frames
        )
    except Exception as exc:
        return exc


def _ingest(batch: ReadBatch | Exception) -> IngestOutcome:
    """A read batch through ``ingest_read``; an exception (an outage) is returned, for the
    loop."""
    if isinstance(batch, Exception):
        return batch
    try:
        refresh_db_connections()
        result = ingest_read(batch)
    except Exception as exc:
        return exc
    return Counter((message.msg_type, message.outcome) for message in result.results)


class InOrder:
    """Ingest batches in the order given. Once one fails, the batches already handed over
    behind it are dropped unanswered until it comes again (``retry``), followed by them, so
    none commits before it."""

    def __init__(self) -> None:
        self.failed = False

    def __call__(self, batch: ReadBatch | Exception, retry: bool) -> IngestOutcome | None:
        if self.failed and not retry:
            return None
        outcome = _ingest(batch)
        self.failed = isinstance(outcome, Exception)
        return outcome


class IngestDied(Exception):
    """The ingest process is gone (killed by the OOM killer, say)."""


class InlineIngest:
    """Ingest in the consumer's own thread, at ``submit``: for a consumer that shares its
    process (the demo runs one in a thread)."""

    def __init__(self) -> None:
        self._in_order = InOrder()
        self._outcomes: deque[IngestOutcome] = deque()

    def submit(self, frames: Frames, retry: bool = False) -> None:
        if (outcome := self._in_order(_read(frames), retry)) is not None:
            self._outcomes.append(outcome)

    def ready(self, timeout: float = 0) -> bool:
        return bool(self._outcomes)

    def outcome(self) -> IngestOutcome:
        return self._outcomes.popleft()

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass


class IngestProcess:
    """Ingest in a forked child process, batch after batch, in order (``InOrder``).

    stomp.py's frame parsing and ingest then run on two cores instead of taking turns on one
    GIL. The child is forked before the consumer opens connections or starts threads of its
    own, and ignores the stop signals (a process group's SIGQUIT too): the consumer says when
    it stops (``close``), after the batch in hand. It exits as well when the consumer dies
    (its pipe closes).
    """

    def __init__(self) -> None:
        connections.close_all()  # the child must not share the parent's database sockets
        # What was loaded so far (Django, the models, pydantic's schemas) lives as long as the
        # process: keep it out of the cyclic collector's sweeps, in both processes. Ingest
        # allocates thousands of objects per batch, and each full sweep went through all of it
        # (about a tenth of ingest's CPU).
        gc.freeze()
        context = multiprocessing.get_context("fork")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(target=_serve_ingest, args=(child_end, self._pipe),
                                        name="fastmon-ingest", daemon=True)  # fmt: skip
        self._process.start()
        child_end.close()

    def submit(self, frames: Frames, retry: bool = False) -> None:
        with contextlib.suppress(OSError):  # the child is gone: ``outcome`` says so
            self._pipe.send((frames, retry))

    def ready(self, timeout: float = 0) -> bool:
        return self._pipe.poll(timeout)  # also when the child is gone (end of file)

    def outcome(self) -> IngestOutcome:
        try:
            return self._pipe.recv()
        except (EOFError, OSError):
            raise IngestDied(f"exit code {self._process.exitcode}") from None

    def kill(self) -> None:
        """Abandon the batch in the child (a stop's deadline passed): its transaction rolls
        back, and nothing of it was acked."""
        self._process.kill()
        self._process.join()

    def close(self) -> None:
        """Let the child finish the batches it has, then end it; if it hangs past STOP_TIMEOUT_S,
        kill it (its transaction rolls back, and nothing of it was acked)."""
        with contextlib.suppress(OSError):
            self._pipe.send(None)
        self._process.join(fastmon_settings.STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._pipe.close()


def _serve_ingest(pipe: Connection, parent_end: Connection) -> None:
    """The ingest process: batches in, outcomes out, until ``None`` or the pipe closes."""
    parent_end.close()
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    # A thread takes the next batch from the pipe and reads it while this one is ingested: the
    # consumer's write (larger than the pipe's buffer) returns at once instead of waiting for
    # this batch, and decoding and validating, the half of ingest that needs no database, runs
    # while this batch waits on the database.
    handed_over: queue.SimpleQueue[tuple[ReadBatch | Exception, bool] | None]
    handed_over = queue.SimpleQueue()
    threading.Thread(target=_read_batches, args=(pipe, handed_over), daemon=True).start()
    in_order = InOrder()
    try:
        while (work := handed_over.get()) is not None:
            outcome = in_order(*work)
            if outcome is None:
                continue
            if isinstance(outcome, Exception) and not isinstance(outcome, TRANSIENT_DB_ERRORS):
                # Its traceback does not cross the pipe: log it here.
                logger.error("ingest failed", exc_info=outcome)
            if isinstance(outcome, Exception) and not isinstance(outcome, DatabaseError):
                # Django's database errors pickle; another exception may not: send its text.
                outcome = RuntimeError(f"ingest failed: {outcome!r}")
            pipe.send(outcome)
    except OSError:
        pass  # the consumer is gone
    finally:
        connections.close_all()


def _read_batches(pipe: Connection, handed_over: queue.SimpleQueue) -> None:
    """The ingest process's reader: batches from the pipe, read, then ``None`` at its end."""
    try:
        while (work := pipe.recv()) is not None:
            frames, retry = work
            handed_over.put((_read(frames), retry))
    except (EOFError, OSError):
        pass  # the consumer is gone
    handed_over.put(None)
