from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from argparse import ArgumentParser, ArgumentTypeError
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import ProgrammingError

from fastmon.live import event_frame
from fastmon.messaging.consumer import TRANSIENT_DB_ERRORS, refresh_db_connections
from fastmon.messaging.retry import backoff_delay
from fastmon.selectors import events_since, newest_event_sequence
from fastmon.tail import WINDOW_S, Tally, describe, table

PAGE = 1000  # events read per query, as the API's /events at most
NOTES_SHOWN = 8  # notable events kept under the table on a terminal

Frame = dict[str, Any]


class Command(BaseCommand):
    help = (
        "Follow fastmon's live events: per run, STFs, TF samples, data volume and rates, redrawn "
        "in place on a terminal (periodic lines otherwise); --json prints one event per line. "
        "Resumes after --since SEQUENCE. Ctrl-C or SIGTERM stops it (exit 0)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--since", type=_count, metavar="SEQUENCE",
            help="start after this sequence number (0 replays everything; default: the newest, "
            "so only what comes next)",
        )  # fmt: skip
        parser.add_argument("--run", type=int, dest="run_number", help="only this run's events")
        parser.add_argument(
            "--kinds", type=_kinds, metavar="KIND,...",
            help="only these kinds (run, stf, tf_samples, dead_letter, alarm, ...)",
        )  # fmt: skip
        parser.add_argument(
            "--json", action="store_true", dest="as_json",
            help="print each event as one JSON object per line (the API's /events shape)",
        )  # fmt: skip
        parser.add_argument(
            "--once", "--until-idle", action="store_true",
            help="exit once the events there now are printed",
        )  # fmt: skip
        parser.add_argument(
            "--interval", type=_seconds, default=0.5, help="seconds between polls (0.5)"
        )
        parser.add_argument(
            "--window", type=_seconds, default=WINDOW_S,
            help=f"rates are over the last this many seconds ({WINDOW_S:g})",
        )  # fmt: skip
        parser.add_argument(
            "--refresh", type=_seconds,
            help="seconds between table updates (1 on a terminal, 10 as plain lines)",
        )  # fmt: skip

    def handle(
        self, *args: Any, since: int | None, run_number: int | None, kinds: set[str] | None,
        as_json: bool, once: bool, interval: float, window: float, refresh: float | None,
        **options: Any,
    ) -> None:  # fmt: skip
        if as_json:
            view: JsonView | TableView = JsonView(self.stdout, self.stderr)
        else:
            view = TableView(self.stdout, self.stderr, Tally(window), refresh)
        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGINT, signal.SIGTERM)
        }

        def wanted(frame: Frame) -> bool:
            return (run_number is None or frame["run_number"] == run_number) and (
                kinds is None or frame["kind"] in kinds
            )

        try:
            self.follow(since, wanted, view, once, interval, stop)
        except BrokenPipeError:
            # The reader went away (`| head`): nothing more to say, and nothing to flush at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def follow(
        self, since: int | None, wanted: Callable[[Frame], bool], view: JsonView | TableView,
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


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ArgumentTypeError("must be 0 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ArgumentTypeError("must be more than 0 seconds")
    return value


def _kinds(text: str) -> set[str]:
    kinds = {kind.strip() for kind in text.split(",") if kind.strip()}
    if not kinds:
        raise ArgumentTypeError("give at least one kind")
    return kinds
