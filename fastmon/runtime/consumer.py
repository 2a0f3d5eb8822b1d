"""run_fastmon's engine: broker frames in, committed batches, acks after commit, outbox out.

Threads: stomp.py's receiver thread only appends frames to a bounded ``Intake``; batching,
acks, reconnects, the outbox relay (it sends on this loop's broker connection) and summaries
run in the one loop of ``Consumer.run``; the rest are background loops
(``fastmon.runtime.loops``, ``fastmon.runtime.heartbeat``), started once subscribed and stopped
by one deadline. Ingest runs in a child process when run_fastmon owns its process
(INGEST_PROCESS), batches in order: the loop hands over the next batch while the last one
commits, so ingest never waits for the loop, and acks each batch after its commit. Memory stays
bounded because the broker never has more than PREFETCH unacknowledged frames in flight per
subscription, and the intake holds exactly that many.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter, deque
from datetime import UTC, datetime

from django.utils.module_loading import import_string

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.database.outages import TRANSIENT_DB_ERRORS
from fastmon.outbox.relay import outbox_lag, relay_outbox
from fastmon.retry import backoff_delay
from fastmon.runtime.heartbeat import StatusReporter
from fastmon.runtime.ingest_worker import IngestDied, IngestProcess, InlineIngest, frames_of
from fastmon.runtime.intake import Intake
from fastmon.runtime.loop import Loop
from fastmon.runtime.loops import ContentMerger, MonitorFeed, QualityTicker, Sampler
from fastmon.runtime.startup import (
    STOP_SIGNALS,
    ExitCode,
    connect_broker,
    namespace_line,
    wait_for_database,
)
from fastmon.runtime.summary import Stats, count_batch
from fastmon.sampling import dispatch
from fastmon.transport.base import (
    BrokerError,
    Delivery,
    durable_subscription_name,
    is_durable,
    validate_destination,
)

logger = logging.getLogger("fastmon.consumer")

_SAMPLING_WORDS = {
    "off": "off",
    dispatch.CELERY: "by Celery workers",
    dispatch.RUN_FASTMON: "in this process (no Celery)",
}
# Batches handed to ingest at once: one committing, the next waiting behind it.
MAX_IN_FLIGHT = 2


class Consumer:
    """Reads the configured destinations until ``stop()``; see ``run`` for the loop."""

    def __init__(self, *, relay: bool = True, destinations: list[str] | None = None) -> None:
        """``destinations=[]`` makes a relay-only process (``fastmon_relay``)."""
        if destinations is None:
            destinations = [*fastmon_settings.SUBSCRIBE_DESTINATIONS,
                            *fastmon_settings.FAST_PROCESSING_DESTINATIONS]  # fmt: skip
            if control := fastmon_settings.CONTROL_DESTINATION:
                destinations.append(control)
            destinations = list(dict.fromkeys(destinations))
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
        # Batches handed to ingest and not yet acked, oldest first (at most MAX_IN_FLIGHT),
        # and since when ingest has been on the oldest.
        self.in_flight: deque[list[Delivery]] = deque()
        self.oldest_since = 0.0
        self.stopping = threading.Event()
        # Connected and subscribed: what is sent from now on reaches this consumer.
        self.started = threading.Event()
        self.subscribed_at: datetime | None = None  # this connection's subscription
        self.stats = Stats()
        # Status: heartbeats to swf-monitor and the ConsumerStatus row, in threads of their own.
        self.last_message_at: datetime | None = None
        self.status = StatusReporter(self)
        self.sampling = "off"
        self.loops: list[Loop] = []  # started once subscribed

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
        """``run`` in the main thread of a process of its own (run_fastmon), with SIGTERM,
        SIGINT and SIGQUIT stopping it cleanly, and ingest in a child process (INGEST_PROCESS)."""
        self.start_ingest_process()
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda *_: self.stop())
        try:
            return self.run()
        finally:
            self.ingest.close()

    def run(self) -> ExitCode:
        try:
            for destination in self.destinations:
                validate_destination(destination)
            namespace = namespace_line()
            self.sampling = self._sampling()
        except ValueError as exc:
            logger.error("configuration: %s", exc)
            return ExitCode.CONFIG
        logger.info(self.describe())
        logger.info(namespace)
        if self.destinations:  # a relay-only process is not the consumer health checks ask about
            self.status.start()
        failure = self._start()
        if failure is not None:
            self.status.stop(time.monotonic() + fastmon_settings.STOP_TIMEOUT_S)
            return failure
        self.started.set()
        self._start_loops()

        next_summary = time.monotonic() + fastmon_settings.SUMMARY_INTERVAL_S
        next_relay = time.monotonic()
        while not self.stopping.is_set():
            if not self.transport.connected:
                self._settle_all()
                self._reconnect()
                continue
            if batch := self._next_batch():
                self._submit(batch)
            while self.in_flight and self.ingest.ready():
                self._settle_oldest()
            if self.relay and time.monotonic() >= next_relay:
                self._relay()
                next_relay = time.monotonic() + fastmon_settings.OUTBOX_POLL_S
            if time.monotonic() >= next_summary:
                self._summary()
                next_summary = time.monotonic() + fastmon_settings.SUMMARY_INTERVAL_S

        self._finish()
        return ExitCode.OK

    def connected_since(self) -> datetime | None:
        """Since when it hears the broker; None while it does not (silence is not judged)."""
        return self.subscribed_at if self.transport.connected else None

    def _start_loops(self) -> None:
        if self.destinations:
            self.loops += [QualityTicker(self.connected_since), ContentMerger()]
        if self.relay:
            self.loops.append(MonitorFeed())
        if self.sampling == dispatch.RUN_FASTMON:
            self.loops.append(Sampler())
        for loop in self.loops:
            loop.start()

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
            f"{fastmon_settings.BATCH_MAX_WAIT_MS} ms; outbox relay "
            f"{'on' if self.relay else 'off'}; sampling {_SAMPLING_WORDS[self.sampling]}"
        )

    def _sampling(self) -> str:
        """Who samples what this consumer stores: "off", Celery, or this process."""
        if not self.destinations or not fastmon_settings.SAMPLING_ENABLED:
            return "off"
        return dispatch.workers()

    def _start(self) -> ExitCode | None:
        """Check the database, then connect: give up with an exit code only at start."""
        deadline = time.monotonic() + fastmon_settings.STARTUP_CONNECT_TIMEOUT_S
        failure = wait_for_database(deadline, self.stopping, self._pause)
        if failure is not None:
            return failure
        return connect_broker(self._connect, deadline, self.stopping, self._pause)

    def _connect(self) -> None:
        self.subscribed_at = None
        self._drop_stale_frames()
        self.transport.connect()
        self.transport.subscribe(self.destinations)
        self.subscribed_at = datetime.now(UTC)

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

        While ingest works on a batch, the next one closes once it is full (it then waits in
        ingest's pipe, so ingest goes on without waiting for the loop to ack and hand over), or
        as soon as ingest is done: ingest never waits for a fuller batch, and acks go out at
        once, so the broker (which holds back past PREFETCH unacked frames) refills while the
        next batch commits. Batches grow with the load, up to BATCH_SIZE. With MAX_IN_FLIGHT
        batches in ingest, nothing closes: the loop acks the oldest once it is answered.
        """
        size = fastmon_settings.BATCH_SIZE
        if len(self.in_flight) >= MAX_IN_FLIGHT:
            self.ingest.ready(timeout=0.2)
            return []
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
        """Hand a batch to ingest (one transaction); ``_settle_oldest`` acks it after its commit."""
        if not self.in_flight:
            self.oldest_since = time.monotonic()
        self.in_flight.append(batch)
        self.ingest.submit(frames_of(batch))

    def _resubmit(self) -> None:
        """Hand every batch in flight to ingest again, in order, the failed oldest first."""
        for index, batch in enumerate(self.in_flight):
            self.ingest.submit(frames_of(batch), retry=index == 0)

    def _settle_all(self, stop_deadline: float | None = None) -> None:
        while self.in_flight:
            self._settle_oldest(stop_deadline)

    def _settle_oldest(self, stop_deadline: float | None = None) -> None:
        """Wait for the oldest batch in flight to commit, resubmitting it (and those behind it)
        while the database is away; then ack it."""
        batch = self.in_flight[0]
        attempt = 0
        while True:
            if not self._answered(stop_deadline):
                self._abandon()
                return
            try:
                result = self.ingest.outcome()
            except IngestDied as exc:
                # Nothing in flight was acked; ingest is idempotent: redo it here, inline.
                logger.error("the ingest process died (%s); ingesting in this process", exc)
                dead, self.ingest = self.ingest, InlineIngest()
                dead.close()  # its pipe
                self._resubmit()
                continue
            if isinstance(result, Counter):
                break
            if not isinstance(result, TRANSIENT_DB_ERRORS):
                raise result
            stop_deadline = stop_deadline or self.stop_by
            if stop_deadline is not None and time.monotonic() >= stop_deadline:
                self._abandon()
                return
            delay = backoff_delay(attempt)
            logger.warning("database unavailable (%s); batch of %d not acked, retry in %.1fs",
                           str(result).strip(), len(batch), delay)  # fmt: skip
            # A stop wakes this wait; the deadline above then bounds the retries.
            self.stopping.wait(delay if stop_deadline is None else min(delay, 0.5))
            attempt += 1
            self._resubmit()
        self.in_flight.popleft()
        acked = self.transport.ack(batch)
        now = time.monotonic()
        metrics.BATCH_COMMIT_SECONDS.observe(now - self.oldest_since)
        self.oldest_since = now
        count_batch(result)
        self.last_message_at = datetime.now(UTC)
        self.stats.count(len(batch), result, acked)

    def _answered(self, stop_deadline: float | None) -> bool:
        """Wait for ingest's answer; False if a stop's deadline passes first (a database that
        hangs must not keep run_fastmon from stopping)."""
        while not self.ingest.ready(timeout=0.2):
            deadline = stop_deadline or self.stop_by
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def _abandon(self) -> None:
        """Stop without the batches in flight committed: nothing of them is acked, the broker
        keeps them; ingest is ended, so nothing of theirs can commit later."""
        frames = sum(map(len, self.in_flight))
        logger.warning("stopping with %d frames uncommitted: the broker keeps them", frames)
        self.stats.unacked += frames
        self.in_flight.clear()
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
        # In hand: received, not yet committed.
        backlog = len(self.intake) + sum(map(len, self.in_flight))
        logger.info("run_fastmon: %s", self.stats.line(backlog, lag))
        self.stats = Stats()

    def _finish(self) -> None:
        """Commit and ack what was already received, within STOP_TIMEOUT_S, then disconnect."""
        deadline = time.monotonic() + fastmon_settings.STOP_TIMEOUT_S
        self._settle_all(stop_deadline=deadline)
        generation = self.transport.generation
        in_hand = [d for d in self._drain_intake() if d.generation == generation]
        for start in range(0, len(in_hand), fastmon_settings.BATCH_SIZE):
            if time.monotonic() >= deadline or self.abandoned:
                break
            self._submit(in_hand[start : start + fastmon_settings.BATCH_SIZE])
            self._settle_all(stop_deadline=deadline)
        if self.relay and self.transport.connected:
            self._relay()
        self.transport.disconnect()
        loops_by = time.monotonic() + fastmon_settings.STOP_TIMEOUT_S
        for loop in self.loops:
            loop.stop(loops_by)
        self.status.stop(loops_by)
        logger.info("run_fastmon: stopped")
