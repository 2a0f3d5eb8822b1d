"""Live events stored in commit order: a client never sees N+1 before N exists."""

from __future__ import annotations

import threading

from django.db import connections, transaction

from fastmon.live.events import record_live_events
from fastmon.models import LiveEvent
from fastmon.testing.waiting import holds_for


def test_events_are_numbered_in_commit_order_across_writers(transactional_db) -> None:
    """A writer holding events uncommitted makes the next writer wait for its sequence numbers,
    so no client can see N+1 before N exists."""
    stored = {"slow": threading.Event(), "fast": threading.Event()}
    release = threading.Event()

    def writer(who: str, hold: threading.Event | None) -> threading.Thread:
        def write() -> None:
            try:
                with transaction.atomic():
                    record_live_events([LiveEvent(kind="alarm", payload={"who": who})])
                    if hold is not None:
                        stored[who].set()
                        hold.wait(5)
                stored[who].set()
            finally:
                connections.close_all()

        thread = threading.Thread(target=write)
        thread.start()
        return thread

    slow = writer("slow", hold=release)
    assert stored["slow"].wait(5)
    fast = writer("fast", hold=None)
    holds_for(lambda: not stored["fast"].is_set(), 0.5, "the fast writer waiting for the slow one")
    release.set()
    slow.join(5)
    fast.join(5)
    order = list(LiveEvent.objects.order_by("id").values_list("payload__who", flat=True))
    assert order == ["slow", "fast"]
