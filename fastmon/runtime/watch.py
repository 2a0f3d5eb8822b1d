"""Watch mode: STF files appearing in a DAQ exit buffer become ``stf_ready`` notices, once each.

For sites without a data agent (the old agent's continuous mode). A watchdog observer (inotify,
or polling where inotify sees nothing or fails) only notes which ``*.stf`` paths changed; the
watcher's own thread waits until a file has been quiet for ``WATCH_SETTLE_S`` (a DAQ may write
slowly, or write under a temporary name and rename), then ingests an ``stf_ready`` body for it
through ``ingest_batch``, the consumer's door, so the domain rules have one home.

"Once" survives restarts without any state of the watcher's own: at start every file already in
the directories is a candidate again, and a file whose STF is stored as ready (or further) is
skipped before anything is ingested, so nothing is announced twice.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import connections
from watchdog.events import (
    EVENT_TYPE_MOVED,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from fastmon.conf import fastmon_settings
from fastmon.database.outages import TRANSIENT_DB_ERRORS, refresh_db_connections
from fastmon.inbound.messages import InboundMessage, MessageResult, Outcome
from fastmon.inbound.schema import STF_FILENAME_RE
from fastmon.ingest.pipeline import ingest_batch
from fastmon.models import StfFile
from fastmon.retry import backoff_delay
from fastmon.runtime.consumer import Consumer
from fastmon.runtime.startup import ExitCode
from fastmon.sampling.reading import read_tf_ranges

logger = logging.getLogger("fastmon.watch")

# What a file looks like from outside: size and mtime (ns). Unchanged for the quiet period means
# the writer is done; size alone would miss a rewrite in place.
Signature = tuple[int, int]

# Only writes and arrivals matter; our own reads (open, close without write) must not count.
_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileClosedEvent]
# Recorded on dead letters, where the consumer records the broker destination.
_DESTINATION = "watch"


class WatchError(Exception):
    """Watch mode cannot start as configured; the message says why."""


def is_stf_name(name: str) -> bool:
    """STF files end in ``.stf``; hidden names are a writer's temporary files."""
    return name.endswith(".stf") and not name.startswith(".")


def signature(path: str) -> Signature | None:
    """The file's size and mtime, or None when it is gone (or is not a regular file)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_size, status.st_mtime_ns) if stat.S_ISREG(status.st_mode) else None


class Settling:
    """Candidate files, each settled once its signature has stayed the same for ``quiet_s``.

    Pure: callers pass the clock and the signature lookup, so the rule is tested with fakes.
    """

    def __init__(self, quiet_s: float) -> None:
        self.quiet_s = quiet_s
        self._candidates: dict[str, tuple[Signature | None, float]] = {}

    def __len__(self) -> int:
        return len(self._candidates)

    def add(self, path: str, now: float) -> None:
        """A change was seen: the quiet period starts again."""
        self._candidates[path] = (None, now)

    def settled(self, signature_of: Callable[[str], Signature | None], now: float) -> list[str]:
        """Candidates quiet for ``quiet_s``, which stop being candidates; vanished ones are
        dropped (a rename away, a delete)."""
        done = []
        for path, (last, since) in list(self._candidates.items()):
            current = signature_of(path)
            if current is None:
                del self._candidates[path]
            elif current != last:
                self._candidates[path] = (current, now)
            elif now - since >= self.quiet_s:
                del self._candidates[path]
                done.append(path)
        return done


def stf_ready_body(path: Path) -> dict[str, Any]:
    """The ``stf_ready`` a data agent would send for this complete file (spec field names).

    The Adler-32 of the whole file (``ad:<decimal>``, as the DAQ writes it) is read here, just
    after the writer finished, while the file is likely still in the page cache. A file that
    cannot be read is announced without a checksum; one that is gone raises ``OSError``.
    """
    try:
        [measured], _ = read_tf_ranges(path, 1, [(0, 0)])
        size, checksum = measured.size_bytes, measured.checksum
    except PermissionError as exc:
        logger.warning("watch: %s announced without a checksum: %s", path, exc)
        size, checksum = path.stat().st_size, None
    body: dict[str, Any] = {
        "msg_type": "stf_ready",
        "namespace": fastmon_settings.NAMESPACE,
        "sender": fastmon_settings.AGENT_NAME,
        "filename": path.name,
        "file_url": path.as_uri(),
        "checksum": checksum,
        "size_bytes": size,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    if match := STF_FILENAME_RE.match(path.name):
        body["run_id"], body["sequence"] = int(match["run"]), int(match["seq"])
    return {key: value for key, value in body.items() if value is not None}


def ingest_files(
    paths: Sequence[str], stopping: threading.Event | None = None
) -> dict[str, MessageResult]:
    """Ingest complete STF files as ``stf_ready`` notices in one transaction, skipping those
    whose STF is already stored as ready or further; the result says what happened to each file
    ingested. ``stopping`` cuts the checksum reads short: the rest wait for the next start."""
    refresh_db_connections()
    done = set(
        StfFile.objects.filter(stf_filename__in={Path(p).name for p in paths})
        .exclude(status=StfFile.Status.ANNOUNCED)
        .values_list("stf_filename", flat=True)
    )
    bodies: dict[str, dict[str, Any]] = {}
    for path in paths:
        if stopping is not None and stopping.is_set():
            break
        if Path(path).name in done:
            logger.debug("watch: %s already stored as ready", path)
            continue
        try:
            bodies[path] = stf_ready_body(Path(path))
        except FileNotFoundError:
            logger.info("watch: %s went away before it was ingested", path)
        except OSError as exc:
            logger.warning("watch: %s not ingested: %s", path, exc)
    if not bodies:
        return {}
    received_at = datetime.now(UTC)
    batch = ingest_batch(
        InboundMessage(json.dumps(body), {"destination": _DESTINATION}, received_at)
        for body in bodies.values()
    )
    return dict(zip(bodies, batch.results, strict=True))


class _Noticed(FileSystemEventHandler):
    """watchdog's thread: only hands changed STF paths over, never blocks."""

    def __init__(self, paths: queue.SimpleQueue[str]) -> None:
        self.paths = paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.dest_path if event.event_type == EVENT_TYPE_MOVED
                           else event.src_path)  # fmt: skip
        if is_stf_name(os.path.basename(path)):
            self.paths.put(path)


class Watcher:
    """Watches DAQ exit buffers in a thread of its own, from ``start()`` until ``stop()``."""

    def __init__(self, directories: Sequence[str | os.PathLike[str]]) -> None:
        """Raises ``WatchError`` for a directory that is not there."""
        self.directories = [Path(d).expanduser().resolve() for d in directories]
        missing = [str(d) for d in self.directories if not d.is_dir()]
        if missing:
            raise WatchError(f"watch: not a directory: {', '.join(missing)}")
        self.settling = Settling(fastmon_settings.WATCH_SETTLE_S)
        self.tick_s = min(0.5, self.settling.quiet_s / 4)
        self.noticed: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="fastmon-watch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Finish the file in hand and return; what is left is found again at the next start."""
        self.stopping.set()
        self.thread.join(fastmon_settings.STOP_TIMEOUT_S)

    def run(self) -> None:
        """Observe first, then scan what is already there, so no file falls between the two."""
        observer = self._observe()
        try:
            for directory in self.directories:
                self._scan(directory)
            logger.info("watch: STF files already there, to check: %d", len(self.settling))
            self._loop()
        finally:
            observer.stop()
            observer.join()
            connections.close_all()  # this thread's connections
            logger.info("watch: stopped")

    def _loop(self) -> None:
        ready: list[str] = []
        attempt = 0
        while not self.stopping.is_set():
            while True:
                try:
                    self.settling.add(self.noticed.get_nowait(), time.monotonic())
                except queue.Empty:
                    break
            ready += self.settling.settled(signature, time.monotonic())
            if ready:
                chunk = ready[: fastmon_settings.BATCH_SIZE]
                try:
                    self._log(ingest_files(chunk, self.stopping))
                except TRANSIENT_DB_ERRORS as exc:
                    delay = backoff_delay(attempt)
                    logger.warning("watch: database unavailable (%s); %d files wait, retry in "
                                   "%.1fs", str(exc).strip(), len(ready), delay)  # fmt: skip
                    attempt += 1
                    self.stopping.wait(delay)
                    continue
                attempt = 0
                del ready[: len(chunk)]
            self.stopping.wait(0 if ready else self.tick_s)

    def _observe(self) -> BaseObserver:
        """inotify unless WATCH_POLLING says otherwise or inotify cannot start here."""
        if not fastmon_settings.WATCH_POLLING:
            try:
                from watchdog.observers.inotify import InotifyObserver

                return self._started(InotifyObserver(), "inotify")
            except (ImportError, OSError) as exc:
                logger.warning("watch: inotify unavailable (%s); polling instead", exc)
        return self._started(PollingObserver(), "polling")

    def _started(self, observer: BaseObserver, kind: str) -> BaseObserver:
        handler = _Noticed(self.noticed)
        for directory in self.directories:
            observer.schedule(handler, str(directory), recursive=False, event_filter=_EVENTS)
        try:
            observer.start()
        except OSError:
            observer.unschedule_all()  # stops the emitters that did start
            raise
        logger.info("watch: watching %s (%s), complete after %.1fs quiet",
                    ", ".join(map(str, self.directories)), kind,
                    self.settling.quiet_s)  # fmt: skip
        return observer

    def _scan(self, directory: Path) -> None:
        now = time.monotonic()
        with os.scandir(directory) as entries:
            for entry in entries:
                if is_stf_name(entry.name) and entry.is_file():
                    self.settling.add(entry.path, now)

    @staticmethod
    def _log(results: dict[str, MessageResult]) -> None:
        for path, result in results.items():
            level = logging.INFO if result.outcome is Outcome.STORED else logging.WARNING
            logger.log(level, "watch: %s: %s (%s)", path, result.outcome, result.detail)


def run_watching(consumer: Consumer, directories: Sequence[str]) -> ExitCode:
    """The consumer in the main thread as always (signals stop it), the watcher beside it."""
    try:
        watcher = Watcher(directories)
    except WatchError as exc:
        logger.error("configuration: %s", exc)
        return ExitCode.CONFIG
    consumer.start_ingest_process()  # forks: before the watcher's threads exist
    watcher.start()
    try:
        return consumer.run_until_signalled()
    finally:
        watcher.stop()
