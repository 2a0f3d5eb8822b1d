"""Following fastmon's live events from the database (``manage.py fastmon_tail`` without
``--url``): the events table polled as the pages' catch-up reads it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.core.management.base import CommandError
from django.db import ProgrammingError

from fastmon.database.outages import TRANSIENT_DB_ERRORS, refresh_db_connections
from fastmon.live.events import events_since, newest_event_sequence
from fastmon.live.frames import event_frame
from fastmon.retry import backoff_delay
from fastmon.tail.render import PAGE, Frame, View, first_line


def follow(
    since: int | None, wanted: Callable[[Frame], bool], view: View,
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
            view.status(f"database unreachable ({first_line(exc)}); retry in {delay:.1f}s")
            stop.wait(delay)
            continue
        except ProgrammingError as exc:
            raise CommandError(
                f"cannot read live events ({first_line(exc)}); is `migrate fastmon` done?"
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
