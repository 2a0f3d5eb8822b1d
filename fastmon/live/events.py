"""Live events stored with the data they describe, numbered in commit order, and pushed to the
pages once their transaction commits (a push that fails loses nothing: clients read the gap
back from the table)."""

from __future__ import annotations

from django.db import transaction

from fastmon.live import push
from fastmon.live.frames import event_frame
from fastmon.models import LiveEvent

# Writers of live events take this transaction lock in turn, from their first event to their
# commit, so sequence numbers follow commit order: a client that has seen N has seen all before.
_LIVE_EVENTS_LOCK = 0x66A57_0E7E


def record_live_events(events: list[LiveEvent]) -> None:
    """Store live events in the current transaction; push them after its commit."""
    if not events:
        return
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LIVE_EVENTS_LOCK])
    LiveEvent.objects.bulk_create(events)
    frames = [event_frame(event) for event in events]
    transaction.on_commit(lambda: push.broadcast(frames))
