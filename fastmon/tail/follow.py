"""Following fastmon's live events from a terminal or a pipe (``fastmon_tail``): the events
table polled as the pages' catch-up reads it, shown as a per-run table or as JSON lines."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, OutputWrapper
from django.db import ProgrammingError

from fastmon.live.frames import event_frame
from fastmon.retry import backoff_delay
from fastmon.runtime.connections import TRANSIENT_DB_ERRORS, refresh_db_connections
from fastmon.selectors import events_since, newest_event_sequence
from fastmon.tail.tally import Tally, describe, table

PAGE = 1000  # events read per query, as the API's /events at most
NOTES_SHOWN = 8  # notable events kept under the table on a terminal

Frame = dict[str, Any]


def follow(
    since: int | None, wanted: Callable[[Frame], bool], view: JsonView | TableView,
    once: bool, interval: float, stop: threading.Event,
) -> None:  # fmt: skip
    """Poll ``events_since`` (what the pages' catch-up reads) until stopped; a database
    outage is reported on one line per attempt and waited out with backoff."""
    cursor = since
    attempt = 0
    while not stop.is_set():
        try:
            refresh_db_connections()
            if cursor is None:
                cursor = newest_event_sequence()
            frames = [event_frame(event) for event in events_since(cursor, PAGE)]
        except TRANSIENT_DB_ERRORS as exc:
            delay = backoff_delay(attempt)
            attempt += 1
            view.status(f"database unreachable ({_first_line(exc)}); retry in {delay:.1f}s")
            stop.wait(delay)
            continue
        except ProgrammingError as exc:
            raise CommandError(
                f"cannot read live events ({_first_line(exc)}); is `migrate fastmon` done?"
            ) from exc
        if attempt:
            attempt = 0
            view.status("database reachable again")
        for frame in frames:
            if wanted(frame):
                view.event(frame)
        if frames:
            cursor = frames[-1]["sequence"]
        if len(frames) == PAGE:
            continue  # catching up: read on at once
        if once:
            break
        view.tick(final=False)
        stop.wait(interval)
    view.tick(final=True)


class JsonView:
    """One JSON object per event and line, flushed at once: for scripts and pipes."""

    def __init__(self, out: OutputWrapper, err: OutputWrapper) -> None:
        self.out, self.err = out, err

    def event(self, frame: Frame) -> None:
        self.out.write(json.dumps(frame))
        self.out.flush()

    def status(self, text: str) -> None:
        self.err.write(f"fastmon_tail: {text}")
        self.err.flush()

    def tick(self, final: bool) -> None:
        """Nothing to redraw: every event was printed as it came."""


class TableView:
    """The per-run table: redrawn in place on a terminal; on a pipe or log, notable events as
    they come and, every ``refresh`` seconds, a line per run that changed or was busy."""

    def __init__(
        self, out: OutputWrapper, err: OutputWrapper, tally: Tally, refresh: float | None
    ) -> None:
        self.out, self.err, self.tally = out, err, tally
        self.terminal = out.isatty()
        self.refresh = refresh or (1.0 if self.terminal else 10.0)
        self.notes: deque[str] = deque(maxlen=NOTES_SHOWN)
        self.last_status = ""
        self.shown_at = 0.0
        self.shown: dict[int | None, tuple[int, bool]] = {}  # run -> (sequence, was busy)

    def event(self, frame: Frame) -> None:
        self.tally.add(frame)
        note = describe(frame)
        if note is None:
            return
        if self.terminal:
            self.notes.append(note)
        else:
            self.out.write(f"{_clock()} {note}")
            self.out.flush()

    def status(self, text: str) -> None:
        self.last_status = text
        self.err.write(f"fastmon_tail: {text}")
        self.err.flush()

    def tick(self, final: bool) -> None:
        """Show the table or lines when ``refresh`` has passed (always when ``final``)."""
        if not final and time.monotonic() - self.shown_at < self.refresh:
            return
        self.shown_at = time.monotonic()
        rows = self.tally.rows(time.time())
        clock = _clock()
        if self.terminal:
            header = f"fastmon_tail {clock}  {self.tally.summary()}  {self.last_status}"
            screen = [header.rstrip(), "", *table(rows), "", *self.notes]
            self.out.write("\x1b[H\x1b[J" + "\n".join(screen))
        else:
            for row in rows:
                busy = row.tf_samples_per_s > 0
                if final or busy or self.shown.get(row.run_number) != (row.last_sequence, False):
                    self.out.write(f"{clock} {row.line()}")
                self.shown[row.run_number] = (row.last_sequence, busy)
            if final:
                self.out.write(f"{clock} {self.tally.summary()}")
        self.out.flush()


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
