"""How ``fastmon_tail`` shows events, wherever they come from (the database or a served site):
as JSON lines, or as a per-run table. No database here: the console script uses it too."""

from __future__ import annotations

import json
import re
import time
from collections import deque
from datetime import datetime
from typing import Any

from django.core.management.base import OutputWrapper

from fastmon.tail.tally import Tally, describe, table

PAGE = 1000  # events read per request, as the API's /events at most
NOTES_SHOWN = 8  # notable events kept under the table on a terminal

Frame = dict[str, Any]

# Terminal controls (C0, DEL, C1) and bidirectional overrides: shown escaped, never obeyed.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class JsonView:
    """One JSON object per event and line, flushed at once: for scripts and pipes."""

    def __init__(self, out: OutputWrapper, err: OutputWrapper) -> None:
        self.out, self.err = out, err

    def event(self, frame: Frame) -> None:
        self.out.write(json.dumps(frame))
        self.out.flush()

    def status(self, text: str) -> None:
        self.err.write(f"fastmon_tail: {printable(text)}")
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
        note = printable(note)
        if self.terminal:
            self.notes.append(note)
        else:
            self.out.write(f"{_clock()} {note}")
            self.out.flush()

    def status(self, text: str) -> None:
        self.last_status = text = printable(text)
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
            screen = [printable(header.rstrip()), "", *map(printable, table(rows)), "", *self.notes]
            self.out.write("\x1b[H\x1b[J" + "\n".join(screen))
        else:
            for row in rows:
                busy = row.tf_samples_per_s > 0
                if final or busy or self.shown.get(row.run_number) != (row.last_sequence, False):
                    self.out.write(f"{clock} {printable(row.line())}")
                self.shown[row.run_number] = (row.last_sequence, busy)
            if final:
                self.out.write(f"{clock} {printable(self.tally.summary())}")
        self.out.flush()


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


def printable(text: str) -> str:
    """``text`` with terminal controls escaped (``\\x1b``): what a site sends may not move the
    cursor, clear the screen or reorder a line."""
    return _UNSAFE.sub(lambda match: match[0].encode("unicode_escape").decode(), text)


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


View = JsonView | TableView
