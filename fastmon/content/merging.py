"""The merger (ALICE QC's "delta" merger): every cycle, the partial histograms that sampling
stored are folded into their runs' and deleted, in one transaction, by one merger at a time.

Exactly once, whatever the workers: a partial is written in the transaction that stores its
STF's samples (none for a rolled-back sample, one per STF, so a redelivered task adds nothing),
and a partial is folded in the transaction that deletes it. Storage stays bounded: partials are
folded away each cycle, a run keeps its whole histograms and its last CONTENT_WINDOW_CYCLES
cycles' deltas, whose sum is its moving window.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.content.histograms import Content
from fastmon.live.events import record_live_events
from fastmon.live.frames import content_event
from fastmon.models import ContentCycle, ContentPartial, Run, RunContent

# Partials folded per transaction: a cycle with more goes on at once with the next.
MERGE_BATCH = 200
_MERGER_LOCK = 0x66A57_C0DE


class Merged(NamedTuple):
    """What a merge did: the partials folded, and the runs (ids) whose content moved, which
    the content checks judge next."""

    partials: int = 0
    run_ids: tuple[int, ...] = ()


def merge_cycle(limit: int = MERGE_BATCH) -> Merged:
    """Fold up to ``limit`` waiting partials into their runs (none when another merger holds
    the lock)."""
    with transaction.atomic():
        if not _merger_lock():
            return Merged()
        partials = list(
            ContentPartial.objects.select_for_update(skip_locked=True).order_by("id")[:limit]
        )
        if not partials:
            return Merged()
        by_run: dict[int, Content] = defaultdict(Content)
        for partial in partials:
            by_run[partial.run_id] += Content.loads(bytes(partial.data))
        numbers = dict(Run.objects.filter(pk__in=by_run).values_list("pk", "run_number"))
        events = [
            content_event(numbers[run_id], _fold(run_id, delta))
            for run_id, delta in sorted(by_run.items())
        ]
        ContentPartial.objects.filter(pk__in=[p.pk for p in partials]).delete()
        record_live_events(events)
    return Merged(len(partials), tuple(sorted(by_run)))


def _fold(run_id: int, delta: Content) -> dict[str, Any]:
    """Add one cycle's delta to a run (its row locked): the whole, the cycle kept for the
    window, the window summed again from the cycles kept."""
    row, _ = RunContent.objects.select_for_update().get_or_create(
        run_id=run_id, defaults={"data": b"", "window": b""}
    )
    whole = Content.loads(bytes(row.data)) if row.data else Content()
    whole += delta
    row.cycle += 1
    ContentCycle.objects.create(run_id=run_id, cycle=row.cycle, data=delta.dumps())
    kept = fastmon_settings.CONTENT_WINDOW_CYCLES
    ContentCycle.objects.filter(run_id=run_id, cycle__lte=row.cycle - kept).delete()
    window = Content()
    earlier = ContentCycle.objects.filter(run_id=run_id, cycle__lt=row.cycle).order_by("cycle")
    for data in earlier.values_list("data", flat=True):
        window += Content.loads(bytes(data))
    window += delta  # this cycle's, in hand: not read back
    row.merged_at = timezone.now()
    row.data, row.window = whole.dumps(), window.dumps()
    row.summary = {**whole.summary(), "window": window.summary()}
    row.save()
    return {"cycle": row.cycle, "merged_at": row.merged_at.isoformat(), **_brief(row.summary)}


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    """What a live event carries: counts and names, not bins."""
    return {key: summary[key] for key in ("tfs_decoded", "corrupt_tfs", "unmapped_sources",
                                          "detectors", "histograms")}  # fmt: skip


def _merger_lock() -> bool:
    """One merger at a time (PostgreSQL); SQLite's single writer needs none."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_MERGER_LOCK])
        return bool(cursor.fetchone()[0])
