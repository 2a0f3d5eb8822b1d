"""run_fastmon's engine: broker frames in, committed batches, acks after commit, outbox out.

Threads: stomp.py's receiver thread only appends frames to a bounded ``Intake``; everything
else (batching, acks, reconnects, the outbox relay, summaries) runs in the one loop of
``Consumer.run``. Ingest runs in a child process when run_fastmon owns its process
(INGEST_PROCESS), one batch at a time: the loop gathers the next batch while the last one
commits, and acks each after its commit. Memory stays bounded because the broker never has more
than PREFETCH unacknowledged frames in flight per subscription, and the intake holds exactly that
many.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from multiprocessing.connection import Connection
from typing import Any
from weakref import WeakKeyDictionary

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils.module_loading import import_string

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.heartbeat import StatusReporter
from fastmon.messaging.outbox import MonitorFeed, outbox_lag, relay_outbox
from fastmon.messaging.retry import backoff_delay
from fastmon.messaging.transports import (
    BrokerAuthFailed,
    BrokerError,
    BrokerRefused,
    BrokerUnreachable,
    Delivery,
    durable_subscription_name,
    is_durable,
    validate_destination,
)
from fastmon.models import Run
from fastmon.services import BatchResult, InboundMessage, Outcome, ingest_batch

logger = logging.getLogger("fastmon.consumer")

# Failures that pass: the database or its connection is away for a while.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


class ExitCode(IntEnum):
    """What run_fastmon's exit status tells an operator."""

    OK = 0
    CONFIG = 2  # bad settings (a destination without /topic/ or /queue/, ...) or no tables
    AUTH = 3  # the broker refused the login
    UNREACHABLE = 4  # no broker answered within STARTUP_CONNECT_TIMEOUT_S
    DATABASE = 5  # the database did not answer within STARTUP_CONNECT_TIMEOUT_S
    REFUSED = 6  # the broker refused the connection or a subscription


def refresh_db_connections() -> None:
    """Drop database connections that broke or grew old, before each batch.

    Django's ``close_old_connections`` would also close a healthy connection whenever the
    site's CONN_MAX_AGE is 0 (the default), and reconnecting for every batch cost run_fastmon
    about a tenth of its time; a consumer keeps its connection for DB_CONNECTION_MAX_AGE_S.
    """
    max_age = fastmon_settings.DB_CONNECTION_MAX_AGE_S
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        seen = _first_seen.get(connection)
        if seen is None or seen[0] is not connection.connection:
            seen = _first_seen[connection] = (connection.connection, time.monotonic())
        too_old = time.monotonic() - seen[1] > max_age
        if too_old or (connection.errors_occurred and not connection.is_usable()):
            connection.close()


# Per Django connection, its driver connection and when that was first seen (a reconnect brings
# a new one). Keyed by Django's wrapper: sqlite3's connections take no weak references.
_first_seen: WeakKeyDictionary[Any, tuple[Any, float]] = WeakKeyDictionary()


# What crosses to the ingest process: per frame its body, headers and time of arrival.
Frames = list[tuple[bytes, Mapping[str, str], float]]
# An ingest's answer: the batch's result or the exception it raised, and when it ended.
IngestOutcome = tuple[BatchResult | Exception, float]


def _frames(batch: list[Delivery]) -> Frames:
    return [(d.body, d.headers, d.received_at) for d in batch]


def _ingest(frames: Frames) -> IngestOutcome:
    """One batch through ``ingest_batch``; an exception (an outage) is returned, for the loop."""
    try:
        refresh_db_connections()
        result: BatchResult | Exception = ingest_batch(
            InboundMessage(body, headers, datetime.fromtimestamp(received_at, UTC))
            for body, headers, received_at in frames
        )
    except Exception as exc:
        result = exc
    return result, time.monotonic()


class IngestDied(Exception):
    """The ingest process is gone (killed by the OOM killer, say)."""


class InlineIngest:
    """Ingest in the consumer's own thread, at ``submit``: for a consumer that shares its
    process (the demo runs one in a thread)."""

    def __init__(self) -> None:
        self._outcome: IngestOutcome | None = None

    def submit(self, frames: Frames) -> None:
        self._outcome = _ingest(frames)

    def ready(self, timeout: float = 0) -> bool:
        return True

    def outcome(self) -> IngestOutcome:
        outcome, self._outcome = self._outcome, None
        assert outcome is not None
        return outcome

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass


class IngestProcess:
    """Ingest in a forked child process, one batch at a time, in order.

    stomp.py's frame parsing and ingest then run on two cores instead of taking turns on one
    GIL. The child is forked before the consumer opens connections or starts threads of its
    own, and ignores SIGTERM and SIGINT: the consumer says when it stops (``close``), after the
    batch in hand. It exits as well when the consumer dies (its pipe closes).
    """

    def __init__(self) -> None:
        connections.close_all()  # the child must not share the parent's database sockets
        context = multiprocessing.get_context("fork")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(target=_serve_ingest, args=(child_end, self._pipe),
                                        name="fastmon-ingest", daemon=True)  # fmt: skip
        self._process.start()
        child_end.close()

    def submit(self, frames: Frames) -> None:
        with contextlib.suppress(OSError):  # the child is gone: ``outcome`` says so
            self._pipe.send(frames)

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
        """Let the child finish the batch it has, then end it; if it hangs past STOP_TIMEOUT_S,
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
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    try:
        while (frames := pipe.recv()) is not None:
            result, ended = _ingest(frames)
            if isinstance(result, Exception) and not isinstance(result, TRANSIENT_DB_ERRORS):
                # Its traceback does not cross the pipe: log it here.
                logger.error("ingest failed", exc_info=result)
            if isinstance(result, Exception) and not isinstance(result, DatabaseError):
                # Django's database errors pickle; another exception may not: send its text.
                result = RuntimeError(f"ingest failed: {result!r}")
            pipe.send((result, ended))
    except (EOFError, OSError):
        pass  # the consumer is gone
    finally:
        connections.close_all()


@dataclass
class Stats:
    """Counters for the periodic summary line; reset at each line."""

    since: float = field(default_factory=time.monotonic)
    messages: int = 0
    batches: int = 0
    dead_letters: int = 0
    ignored: int = 0
    unacked: int = 0
    published: int = 0

    def line(self, backlog: int, lag: tuple[int, float | None]) -> str:
        elapsed = max(time.monotonic() - self.since, 1e-9)
        pending, oldest = lag
        age = f", oldest {oldest:.1f}s" if oldest is not None else ""
        return (
            f"{self.messages / elapsed:.1f} msg/s, "
            f"batch {self.messages / self.batches if self.batches else 0:.1f}, "
            f"backlog {backlog}, dead letters {self.dead_letters}, ignored {self.ignored}, "
            f"left to redelivery {self.unacked}, outbox {pending} pending{age}, "
            f"published {self.published}"
        )


class Intake:
    """Frames from stomp.py's receiver thread to the loop, which takes them a batch at a time.

    The loop sleeps until a whole batch is there (or its wait ends) instead of waking for each
    frame, as one ``queue.Queue.get`` per frame made it do: at thousands of frames a second,
    those wake-ups and GIL hand-overs cost about as much as parsing the frames.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._frames: deque[Delivery] = deque()
        self._wanted = 1
        self._changed = threading.Condition()

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, delivery: Delivery) -> bool:
        """Append without blocking; False if full."""
        with self._changed:
            if len(self._frames) >= self.maxsize:
                return False
            self._frames.append(delivery)
            if len(self._frames) >= self._wanted:
                self._changed.notify()
        return True

    def wait_for(self, count: int, timeout: float) -> None:
        """Return once ``count`` frames are there, or after ``timeout`` seconds."""
        with self._changed:
            self._wanted = count
            self._changed.wait_for(lambda: len(self._frames) >= count, timeout)

    def take(self, limit: int) -> list[Delivery]:
        """Up to ``limit`` frames, oldest first."""
        with self._changed:
            return [self._frames.popleft() for _ in range(min(limit, len(self._frames)))]


class Consumer:
    """Reads the configured destinations until ``stop()``; see ``run`` for the loop."""

    def __init__(self, *, relay: bool = True, destinations: list[str] | None = None) -> None:
        """``destinations=[]`` makes a relay-only process (``fastmon_relay``)."""
        if destinations is None:
            destinations = list(fastmon_settings.SUBSCRIBE_DESTINATIONS)
            if control := fastmon_settings.CONTROL_DESTINATION:
                destinations.append(control)
        self.destinations = destinations
        self.relay = relay
        # Frames in flight are bounded by the prefetch, so the intake never fills.
        self.intake = Intake(fastmon_settings.PREFETCH * max(len(self.destinations), 1))
        self.transport = import_string(fastmon_settings.TRANSPORT)(
            on_delivery=self._receive, durable=any(map(is_durable, self.destinations))
        )
        self.ingest: InlineIngest | IngestProcess = InlineIngest()
        self.stop_by: float | None = None  # set by stop()
        self.abandoned = False  # a stop gave up a batch: ingest nothing more
        # The batch submitted to ingest and not yet acked, and when it was submitted.
        self.in_flight: list[Delivery] = []
        self.submitted_at = 0.0
        self.stopping = threading.Event()
        # Connected and subscribed: what is sent from now on reaches this consumer.
        self.started = threading.Event()
        self.stats = Stats()
        # Status: heartbeats to swf-monitor and the ConsumerStatus row, in threads of their own.
        self.last_message_at: datetime | None = None
        self.status = StatusReporter(self)
        self.feed = MonitorFeed()

    # -- the receiver thread ------------------------------------------------------------------

    def _receive(self, delivery: Delivery) -> None:
        """stomp.py's thread: hand over, never block. A frame not taken stays unacked and the
        broker redelivers it."""
        if self.stopping.is_set():
            return
        if not self.intake.put(delivery):
            logger.error("intake full (prefetch misconfigured?): frame left to redelivery")

    # -- the main loop -------------------------------------------------------------------------

    def stop(self) -> None:
        """Safe from a signal handler: the loop finishes the batch in hand and exits, within
        STOP_TIMEOUT_S."""
        if not self.stopping.is_set():
            self.stop_by = time.monotonic() + fastmon_settings.STOP_TIMEOUT_S
        self.stopping.set()

    def start_ingest_process(self) -> None:
        """Fork the ingest process (INGEST_PROCESS) while this process has no other thread
        and no connection: call it before starting any (``run_until_signalled`` does)."""
        wanted = self.destinations and fastmon_settings.INGEST_PROCESS
        if wanted and isinstance(self.ingest, InlineIngest):
            self.ingest = IngestProcess()

    def run_until_signalled(self) -> ExitCode:
        """``run`` in the main thread of a process of its own (run_fastmon), with SIGTERM and
        SIGINT stopping it cleanly, and ingest in a child process (INGEST_PROCESS)."""
        self.start_ingest_process()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())
        try:
            return self.run()
        finally:
            self.ingest.close()

    def run(self) -> ExitCode:
        try:
            for destination in self.destinations:
                validate_destination(destination)
        except ValueError as exc:
            logger.error("configuration: %s", exc)
            return ExitCode.CONFIG
        logger.info(self.describe())
        if self.destinations:  # a relay-only process is not the consumer health checks ask about
            self.status.start()
        failure = self._start()
        if failure is not None:
            self.status.stop()
            return failure
        self.started.set()
        if self.relay:
            self.feed.start()

        next_summary = time.monotonic() + fastmon_settings.SUMMARY_INTERVAL_S
        next_relay = time.monotonic()
        while not self.stopping.is_set():
            if not self.transport.connected:
                self._settle()
                self._reconnect()
                continue
            # One batch at a time: the last one is committed and acked before this one goes.
            self._settle(then=self._next_batch())
            if self.relay and time.monotonic() >= next_relay:
                self._relay()
                next_relay = time.monotonic() + fastmon_settings.OUTBOX_POLL_S
            if time.monotonic() >= next_summary:
                self._summary()
                next_summary = time.monotonic() + fastmon_settings.SUMMARY_INTERVAL_S

        self._finish()
        return ExitCode.OK

    def describe(self) -> str:
        subscriptions = []
        for destination in self.destinations:
            durable = is_durable(destination)
            kind = f"durable {durable_subscription_name(destination)!r}" if durable else "shared"
            subscriptions.append(f"{destination} ({kind})")
        return (
            f"run_fastmon: broker {self.transport.describe()}; subscribing to "
            f"{', '.join(subscriptions) or 'nothing'} with prefetch {fastmon_settings.PREFETCH}; "
            f"batches of up to {fastmon_settings.BATCH_SIZE} frames or "
            f"{fastmon_settings.BATCH_MAX_WAIT_MS} ms; outbox relay {'on' if self.relay else 'off'}"
        )

    def _start(self) -> ExitCode | None:
        """Check the database, then connect: give up with an exit code only at start."""
        deadline = time.monotonic() + fastmon_settings.STARTUP_CONNECT_TIMEOUT_S
        attempt = 0
        while True:
            try:
                refresh_db_connections()
                Run.objects.exists()
                break
            except TRANSIENT_DB_ERRORS as exc:
                if time.monotonic() >= deadline or self.stopping.is_set():
                    logger.error("database unreachable: %s", exc)
                    return ExitCode.DATABASE
                self._pause(attempt, f"database unreachable ({exc})")
                attempt += 1
            except DatabaseError as exc:
                logger.error("database not ready (run `manage.py migrate`?): %s", exc)
                return ExitCode.CONFIG
        attempt = 0
        while not self.stopping.is_set():
            try:
                self._connect()
                return None
            except BrokerAuthFailed as exc:
                logger.error("%s", exc)
                return ExitCode.AUTH
            except BrokerRefused as exc:
                logger.error("%s", exc)
                return ExitCode.REFUSED
            except BrokerUnreachable as exc:
                if time.monotonic() >= deadline:
                    logger.error("%s; giving up after %.0fs", exc,
                                 fastmon_settings.STARTUP_CONNECT_TIMEOUT_S)  # fmt: skip
                    return ExitCode.UNREACHABLE
                self._pause(attempt, str(exc))
                attempt += 1
        return None

    def _connect(self) -> None:
        self._drop_stale_frames()
        self.transport.connect()
        self.transport.subscribe(self.destinations)

    def _reconnect(self) -> None:
        """After the start, a lost broker is waited for, however long it takes."""
        attempt = 0
        while not self.stopping.is_set():
            try:
                self._connect()
                logger.info("reconnected to the broker")
                return
            except BrokerError as exc:
                self._pause(attempt, f"broker: {exc}")
                attempt += 1

    def _drain_intake(self) -> list[Delivery]:
        return self.intake.take(self.intake.maxsize)

    def _drop_stale_frames(self) -> None:
        """Frames of a lost connection cannot be acked; the broker redelivers them."""
        dropped = len(self._drain_intake())
        if dropped:
            logger.info("dropped %d unacked frames of the lost connection", dropped)

    def _pause(self, attempt: int, why: str) -> None:
        delay = backoff_delay(attempt)
        logger.warning("%s; retrying in %.1fs", why, delay)
        self.stopping.wait(delay)

    def _next_batch(self) -> list[Delivery]:
        """Up to BATCH_SIZE frames, waiting at most BATCH_MAX_WAIT_MS once the first is there.

        While a batch is in flight, the next one closes as soon as that one is committed: ingest
        never waits for a fuller batch, and acks go out at once, so the broker (which holds back
        past PREFETCH unacked frames) refills while the next batch commits. Batches grow with
        the load, up to BATCH_SIZE.
        """
        size = fastmon_settings.BATCH_SIZE
        if self.in_flight:
            while len(self.intake) < size and not self.stopping.is_set():
                if self.ingest.ready(timeout=0.005):
                    break
        else:
            self.intake.wait_for(1, 0.5)
            if not self.intake:
                return []
            self.intake.wait_for(size, fastmon_settings.BATCH_MAX_WAIT_MS / 1000)
        batch = self.intake.take(size)
        generation = self.transport.generation
        return [delivery for delivery in batch if delivery.generation == generation]

    def _submit(self, batch: list[Delivery]) -> None:
        """Hand a batch to ingest (one transaction); ``_settle`` acks it after its commit."""
        self.in_flight, self.submitted_at = batch, time.monotonic()
        self.ingest.submit(_frames(batch))

    def _settle(
        self, stop_deadline: float | None = None, then: list[Delivery] | None = None
    ) -> None:
        """Wait for the batch in flight to commit, resubmitting it while the database is away;
        ack it after the commit, then submit ``then``, the next batch, before counting this one
        (ingest does not wait for the bookkeeping)."""
        batch, self.in_flight, submitted_at = self.in_flight, [], self.submitted_at
        if not batch:
            if then:
                self._submit(then)
            return
        attempt = 0
        while True:
            if not self._answered(stop_deadline):
                self._abandon(batch + (then or []))
                return
            try:
                result, ended = self.ingest.outcome()
            except IngestDied as exc:
                # Nothing of the batch was acked; ingest is idempotent: redo it here, inline.
                logger.error("the ingest process died (%s); ingesting in this process", exc)
                self.ingest = InlineIngest()
                self.ingest.submit(_frames(batch))
                continue
            if isinstance(result, BatchResult):
                break
            if not isinstance(result, TRANSIENT_DB_ERRORS):
                raise result
            stop_deadline = stop_deadline or self.stop_by
            if stop_deadline is not None and time.monotonic() >= stop_deadline:
                self._abandon(batch + (then or []))
                return
            delay = backoff_delay(attempt)
            logger.warning("database unavailable (%s); batch of %d not acked, retry in %.1fs",
                           str(result).strip(), len(batch), delay)  # fmt: skip
            # A stop wakes this wait; the deadline above then bounds the retries.
            self.stopping.wait(delay if stop_deadline is None else min(delay, 0.5))
            attempt += 1
            self.ingest.submit(_frames(batch))
        acked = self.transport.ack(batch)
        if then:
            self._submit(then)
        metrics.BATCH_COMMIT_SECONDS.observe(ended - submitted_at)
        metrics.count_batch(result)
        self.last_message_at = datetime.now(UTC)
        self.stats.messages += len(batch)
        self.stats.batches += 1
        self.stats.dead_letters += result.counts[Outcome.DEAD_LETTERED]
        self.stats.ignored += result.counts[Outcome.IGNORED] + result.counts[Outcome.FILTERED]
        self.stats.unacked += len(batch) - acked

    def _answered(self, stop_deadline: float | None) -> bool:
        """Wait for ingest's answer; False if a stop's deadline passes first (a database that
        hangs must not keep run_fastmon from stopping)."""
        while not self.ingest.ready(timeout=0.2):
            deadline = stop_deadline or self.stop_by
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def _abandon(self, frames: list[Delivery]) -> None:
        """Stop without these frames committed: nothing of them is acked, the broker keeps
        them; ingest is ended, so nothing of theirs can commit later."""
        logger.warning("stopping with %d frames uncommitted: the broker keeps them", len(frames))
        self.stats.unacked += len(frames)
        self.ingest.kill()
        self.abandoned = True

    def _relay(self) -> None:
        try:
            self.stats.published += relay_outbox(self.transport)
        except TRANSIENT_DB_ERRORS as exc:
            logger.warning("outbox relay: database unavailable (%s)", exc)

    def _summary(self) -> None:
        try:
            lag = outbox_lag()
        except TRANSIENT_DB_ERRORS:
            lag = (-1, None)
        logger.info("run_fastmon: %s", self.stats.line(len(self.intake), lag))
        self.stats = Stats()

    def _finish(self) -> None:
        """Commit and ack what was already received, within STOP_TIMEOUT_S, then disconnect."""
        deadline = time.monotonic() + fastmon_settings.STOP_TIMEOUT_S
        self._settle(stop_deadline=deadline)
        generation = self.transport.generation
        in_hand = [d for d in self._drain_intake() if d.generation == generation]
        for start in range(0, len(in_hand), fastmon_settings.BATCH_SIZE):
            if time.monotonic() >= deadline or self.abandoned:
                break
            self._submit(in_hand[start : start + fastmon_settings.BATCH_SIZE])
            self._settle(stop_deadline=deadline)
        if self.relay and self.transport.connected:
            self._relay()
        self.transport.disconnect()
        self.feed.stop()
        self.status.stop()
        logger.info("run_fastmon: stopped")
