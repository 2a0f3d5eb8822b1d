"""Reads for pages, the API and commands: the queries live here, not in views."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from django.db.models import (
    Count,
    F,
    Max,
    Prefetch,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Substr
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.db import duration_percentiles
from fastmon.models import DeadLetter, LiveEvent, Run, StfFile, TfSample
from fastmon.processing.stats import processing_summary


def runs_with_counts() -> QuerySet[Run]:
    """Runs, newest first, with how many STFs were announced and sampled, in one query."""
    return Run.objects.annotate(
        stf_announced=Count("stf_files"),
        stf_sampled=Count("stf_files", filter=Q(stf_files__status=StfFile.Status.SAMPLED)),
    ).order_by("-run_number")


def pending_dead_letters() -> QuerySet[DeadLetter]:
    return DeadLetter.objects.filter(status=DeadLetter.Status.PENDING).order_by("-received_at")


def pending_dead_letters_to_show() -> QuerySet[DeadLetter]:
    """Pending letters with only the start of each body (``body_start``): a page of them stays
    small whatever arrived."""
    return pending_dead_letters().defer("body").annotate(body_start=Substr("body", 1, 200))


def tf_samples() -> QuerySet[TfSample]:
    """TF samples with what their list needs joined in (no query per row)."""
    return TfSample.objects.select_related("stf", "run", "policy").order_by("-created_at", "-id")


def tf_sample_rows(samples: QuerySet[TfSample]) -> QuerySet:
    """The fastmon-files list as plain rows (no model instances), fields in API order."""
    return samples.annotate(
        stf_file=F("stf__stf_filename"),
        run_number=F("run__run_number"),
        policy_name=F("policy__name"),
        policy_version=F("policy__version"),
    ).values(
        "tf_file_id", "stf_file", "tf_filename", "tf_first", "tf_last", "tf_count",
        "file_size_bytes", "checksum", "status", "metadata", "created_at", "updated_at",
        "run_number", "size_estimated", "policy_name", "policy_version", "seed", "published_at",
        "monitor_state", "monitor_file_id",
    )  # fmt: skip


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


def may_read(user: Any) -> bool:
    """The pages' and the websocket's rule: anyone, unless PAGES_REQUIRE_LOGIN."""
    if not fastmon_settings.PAGES_REQUIRE_LOGIN:
        return True
    return bool(user is not None and user.is_authenticated)


# Latency stages: (name, later stamp, earlier stamp), on STF files.
STF_STAGES = [
    ("daq_to_broker", "broker_at", "ended_at"),
    ("broker_to_received", "received_at", "broker_at"),
    ("received_to_committed", "committed_at", "received_at"),
    ("committed_to_sampled", "sampled_at", "committed_at"),
    ("daq_to_sampled", "sampled_at", "ended_at"),
]


def achieved_fraction(run: Run, sampled_tfs: int | None = None) -> float | None:
    """TFs sampled over the TFs of the run's sampled STFs (None before any was sampled)."""
    if sampled_tfs is None:
        sampled_tfs = TfSample.objects.filter(run=run).aggregate(n=Sum("tf_count"))["n"] or 0
    default_tf_count = fastmon_settings.DEFAULT_TF_COUNT
    sampled_stfs = StfFile.objects.filter(run=run, status=StfFile.Status.SAMPLED)
    total = sum(tf or default_tf_count for tf in sampled_stfs.values_list("tf_count", flat=True))
    return sampled_tfs / total if total else None


def dashboard() -> dict[str, Any]:
    """The dashboard as first drawn; live events take it from there."""
    runs = list(runs_with_counts()[:10])
    current = runs[0] if runs else None
    samples = list(TfSample.objects.select_related("stf", "run").order_by("-id")[:200])
    recent_stfs = StfFile.objects.exclude(received_at=None).order_by("-id")
    chart_samples = [
        {
            "at": sample.created_at.timestamp(),
            "bytes": sample.file_size_bytes,
            "latency": _seconds_between(sample.stf.received_at, sample.created_at),
        }
        for sample in reversed(samples)
    ]
    received = recent_stfs.values_list("received_at", flat=True)[:5000]
    return {
        "runs": runs,
        "current_run": current,
        "achieved_fraction": achieved_fraction(current) if current else None,
        "processing": processing_summary(current) if current else None,
        "tf_samples": samples,
        "pending_dead_letters": pending_dead_letters().count(),
        "chart_data": {
            # The server's clock: event times are the server's, the browser's clock may differ.
            "now": timezone.now().timestamp(),
            "stf_received": [when.timestamp() for when in received],
            "samples": chart_samples,
        },
    }


def _seconds_between(earlier: Any, later: Any) -> float | None:
    return (later - earlier).total_seconds() if earlier and later else None


def run_page(run: Run) -> dict[str, Any]:
    """A run's STFs (newest first, with their samples as TF ranges), its statistics and its
    fast processing."""
    stfs = list(
        StfFile.objects.filter(run=run)
        .prefetch_related(Prefetch("tf_samples", TfSample.objects.order_by("tf_first")))
        .order_by("-sequence", "-id")[:500]
    )
    return {
        "run": run,
        "stfs": stfs,
        "statistics": run_statistics(run),
        "processing": processing_summary(run),
    }


def run_statistics(run: Run) -> dict[str, Any]:
    """What shift crews ask of a run: samples, achieved fraction, sizes, latencies by stage,
    samples by machine state, completeness of the STF sequence."""
    stfs = StfFile.objects.filter(run=run)
    samples = TfSample.objects.filter(run=run)
    totals = samples.aggregate(
        count=Count("id"), tfs=Sum("tf_count"), bytes=Sum("file_size_bytes"),
        estimated=Count("id", filter=Q(size_estimated=True)),
    )  # fmt: skip
    sequences = list(stfs.exclude(sequence=None).values_list("sequence", flat=True))
    seen = Counter(sequences)
    gaps = _gaps(sorted(seen))
    return {
        "run_number": run.run_number,
        "stf_files": stfs.count(),
        "stf_status_counts": dict(stfs.values_list("status").annotate(n=Count("id"))),
        "total_stf_files_announced": run.total_stf_files,
        "tf_samples": totals["count"],
        "tf_samples_estimated": totals["estimated"],
        "tf_sample_status_counts": dict(samples.values_list("status").annotate(n=Count("id"))),
        "achieved_fraction": achieved_fraction(run, totals["tfs"] or 0),
        "average_tf_sample_bytes": totals["bytes"] / totals["count"] if totals["bytes"] else None,
        "average_bytes_per_tf": totals["bytes"] / totals["tfs"] if totals["bytes"] else None,
        "tf_samples_by_state": [
            {"state": state, "substate": substate, "tf_samples": n}
            for state, substate, n in samples.values_list("stf__state", "stf__substate")
            .annotate(n=Count("id"))
            .order_by("stf__state", "stf__substate")
        ],
        "latency_seconds": {
            name: duration_percentiles(stfs, later, earlier) for name, later, earlier in STF_STAGES
        }
        | {"sampled_to_published": duration_percentiles(samples, "published_at", "created_at")},
        "sequence": {
            "first": min(seen) if seen else None,
            "last": max(seen) if seen else None,
            "missing": gaps,
            "duplicated": sorted(number for number, n in seen.items() if n > 1),
        },
    }


def _gaps(ordered: list[int], limit: int = 1000) -> list[list[int]]:
    """Missing stretches ``[first, last]`` between the sequence numbers seen."""
    missing = [[a + 1, b - 1] for a, b in itertools.pairwise(ordered) if b - a > 1]
    return missing[:limit]
