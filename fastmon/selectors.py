"""Reads for pages, the API and commands: the queries live here, not in views."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Q,
    QuerySet,
    Sum,
)

from fastmon.conf import fastmon_settings
from fastmon.models import DeadLetter, LiveEvent, Run, StfFile, TfSample


def runs_with_counts() -> QuerySet[Run]:
    """Runs, newest first, with how many STFs were announced and sampled, in one query."""
    return Run.objects.annotate(
        stf_announced=Count("stf_files"),
        stf_sampled=Count("stf_files", filter=Q(stf_files__status=StfFile.Status.SAMPLED)),
    ).order_by("-run_number")


def pending_dead_letters() -> QuerySet[DeadLetter]:
    return DeadLetter.objects.filter(status=DeadLetter.Status.PENDING).order_by("-received_at")


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
    )  # fmt: skip


def events_since(sequence: int, limit: int) -> QuerySet[LiveEvent]:
    return LiveEvent.objects.filter(id__gt=sequence).order_by("id")[:limit]


# Latency stages: (name, later stamp, earlier stamp), on STF files.
STF_STAGES = [
    ("daq_to_broker", "broker_at", "ended_at"),
    ("broker_to_received", "received_at", "broker_at"),
    ("received_to_committed", "committed_at", "received_at"),
    ("committed_to_sampled", "sampled_at", "committed_at"),
    ("daq_to_sampled", "sampled_at", "ended_at"),
]


def run_statistics(run: Run) -> dict[str, Any]:
    """What shift crews ask of a run: samples, achieved fraction, sizes, latencies by stage,
    samples by machine state, completeness of the STF sequence."""
    stfs = StfFile.objects.filter(run=run)
    samples = TfSample.objects.filter(run=run)
    default_tf_count = fastmon_settings.DEFAULT_TF_COUNT
    sampled_stfs = stfs.filter(status=StfFile.Status.SAMPLED)
    sampled_tfs_total = sum(
        tf_count or default_tf_count for tf_count in sampled_stfs.values_list("tf_count", flat=True)
    )
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
        "achieved_fraction": (totals["tfs"] or 0) / sampled_tfs_total
        if sampled_tfs_total
        else None,
        "average_tf_sample_bytes": totals["bytes"] / totals["count"] if totals["bytes"] else None,
        "average_bytes_per_tf": totals["bytes"] / totals["tfs"] if totals["bytes"] else None,
        "tf_samples_by_state": [
            {"state": state, "substate": substate, "tf_samples": n}
            for state, substate, n in samples.values_list("stf__state", "stf__substate")
            .annotate(n=Count("id"))
            .order_by("stf__state", "stf__substate")
        ],
        "latency_seconds": {
            name: _percentiles(stfs, later, earlier) for name, later, earlier in STF_STAGES
        }
        | {"sampled_to_published": _percentiles(samples, "published_at", "created_at")},
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


class _PercentileSeconds(Aggregate):
    """PostgreSQL's percentile_cont over a duration, in seconds."""

    template = (
        "percentile_cont(%(fraction)s) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM %(expressions)s))"
    )
    output_field = FloatField()


def _percentiles(rows: QuerySet, later: str, earlier: str) -> dict[str, float | None]:
    """Count and p50/p95/p99 of ``later - earlier`` in seconds: computed by PostgreSQL, which
    spares sending every duration (a run has hundreds of thousands of samples); elsewhere
    (SQLite in the demo) in Python."""
    rows = rows.exclude(**{f"{later}__isnull": True}).exclude(**{f"{earlier}__isnull": True})
    delay = ExpressionWrapper(F(later) - F(earlier), output_field=DurationField())
    if connection.vendor == "postgresql":
        return rows.aggregate(
            count=Count("id"),
            **{f"p{p}": _PercentileSeconds(delay, fraction=p / 100) for p in (50, 95, 99)},
        )
    durations = sorted(
        d.total_seconds() for d in rows.annotate(d=delay).values_list("d", flat=True)
    )
    if not durations:
        return {"count": 0, "p50": None, "p95": None, "p99": None}
    return {
        "count": len(durations),
        **{f"p{p}": _interpolated(durations, p / 100) for p in (50, 95, 99)},
    }


def _interpolated(ordered: list[float], fraction: float) -> float:
    """percentile_cont's definition: linear interpolation between the closest ranks."""
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
