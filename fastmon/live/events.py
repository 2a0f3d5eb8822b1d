"""Live events stored with the data they describe, numbered in commit order, and pushed to the
pages once their transaction commits (a push that fails loses nothing: clients read the gap
back from the table)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max, QuerySet

from fastmon.live import push
from fastmon.live.frames import event_frame
from fastmon.models import LiveEvent

# Writers of live events take this transaction lock in turn, from their first event to their
# commit, so sequence numbers follow commit order: a client that has seen N has seen all before.
_LIVE_EVENTS_LOCK = 0x66A57_0E7E


def hold_live_events() -> None:
    """Take the live-events lock until the transaction ends (again: harmless). A writer that
    locks other rows before its events takes it first, so every writer locks in one order."""
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LIVE_EVENTS_LOCK])


def record_live_events(events: list[LiveEvent]) -> None:
    """Store live events in the current transaction; push them after its commit."""
    if not events:
        return
    hold_live_events()
    LiveEvent.objects.bulk_create(events)
    frames = [event_frame(event) for event in events]
    transaction.on_commit(lambda: push.broadcast(frames))


def events_since(sequence: int, limit: int, upto: int | None = None) -> QuerySet[LiveEvent]:
    events = LiveEvent.objects.filter(id__gt=sequence)
    if upto is not None:
        events = events.filter(id__lte=upto)
    return events.order_by("id")[:limit]


def newest_event_sequence() -> int:
    return LiveEvent.objects.aggregate(newest=Max("id"))["newest"] or 0


def replay_start(since: int, maximum: int) -> int:
    """Where a replay after ``since`` starts so that it sends at most ``maximum`` events."""
    newer = LiveEvent.objects.filter(id__gt=since).order_by("-id").values_list("id", flat=True)
    oldest_kept = list(newer[maximum : maximum + 1])
    return oldest_kept[0] if oldest_kept else since
