"""A run's statistics as shift crews read them (``api/runs/<n>/statistics/``, the run page):
the samples' side from the run's counters (a few dozen rows, whatever the run's size), the STFs'
side in one scan of the run's STFs."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum, Value, Window
from django.db.models.functions import Coalesce, Lead

from fastmon.conf import fastmon_settings
from fastmon.models import Run, StfFile
from fastmon.statistics import counters
from fastmon.statistics.percentiles import bucket_percentiles, stage_percentiles

# Latency stages: (name, later stamp, earlier stamp), on STF files.
STF_STAGES = [
    ("daq_to_broker", "broker_at", "ended_at"),
    ("broker_to_received", "received_at", "broker_at"),
    ("received_to_committed", "committed_at", "received_at"),
    ("committed_to_sampled", "sampled_at", "committed_at"),
    ("daq_to_sampled", "sampled_at", "ended_at"),
]


def achieved_fraction(run: Run) -> float | None:
    """TFs sampled over the TFs of the run's sampled STFs (None before any was sampled)."""
    sampled_tfs = counters.counters_of(run.pk).get(counters.TFS, 0)
    stfs = StfFile.objects.filter(run=run).aggregate(n=_tfs_of_sampled_stfs())
    return sampled_tfs / stfs["n"] if stfs["n"] else None


def _tfs_of_sampled_stfs() -> Sum:
    default = Value(fastmon_settings.DEFAULT_TF_COUNT)
    return Sum(Coalesce("tf_count", default), filter=Q(status=StfFile.Status.SAMPLED))


def run_statistics(run: Run) -> dict[str, Any]:
    """What shift crews ask of a run: samples, achieved fraction, sizes, latencies by stage,
    samples by machine state, completeness of the STF sequence."""
    counted = counters.counters_of(run.pk)
    samples, tfs, size = (counted.get(name, 0) for name in (counters.SAMPLES, counters.TFS,
                                                             counters.BYTES))  # fmt: skip
    stfs = StfFile.objects.filter(run=run)
    statuses = {status: Count("pk", filter=Q(status=status)) for status in StfFile.Status.values}
    latency, found = stage_percentiles(
        stfs, STF_STAGES, stf_files=Count("pk"), sampled_tfs_total=_tfs_of_sampled_stfs(),
        first=Min("sequence"), last=Max("sequence"), **statuses,
    )  # fmt: skip
    return {
        "run_number": run.run_number,
        "stf_files": found["stf_files"],
        "stf_status_counts": {status: found[status] for status in statuses if found[status]},
        "total_stf_files_announced": run.total_stf_files,
        "tf_samples": samples,
        "tf_samples_estimated": counted.get(counters.ESTIMATED, 0),
        "tf_sample_status_counts": _named(counted, counters.STATUS),
        # What the sampling policy's caps held back, in samples, by cap.
        "tf_samples_held_back": _named(counted, counters.HELD_BACK),
        "achieved_fraction": tfs / found["sampled_tfs_total"]
        if found["sampled_tfs_total"]
        else None,
        "average_tf_sample_bytes": size / samples if size else None,
        "average_bytes_per_tf": size / tfs if size else None,
        "tf_samples_by_state": [
            {"state": state, "substate": substate, "tf_samples": n}
            for (state, substate), n in sorted(
                (tuple(json.loads(name)), n) for name, n in _named(counted, counters.STATE).items()
            )
        ],
        # Sampled to published from the run's histogram: within 4.4 % of the exact figure.
        "latency_seconds": latency
        | {"sampled_to_published": bucket_percentiles(_named(counted, counters.PUBLISHED))},
        "sequence": {"first": found["first"], "last": found["last"], **_sequence_faults(stfs)},
    }


def _sequence_faults(stfs: QuerySet[StfFile]) -> dict[str, list]:
    """Missing stretches ``[first, last]`` between the sequence numbers seen (the first 1000),
    and the numbers seen twice: found by the database, not by reading every number."""
    numbered = stfs.exclude(sequence=None).order_by("sequence")
    following = Window(Lead("sequence"), order_by=F("sequence").asc())
    gaps = (
        numbered.annotate(following=following)
        .filter(following__gt=F("sequence") + 1)
        .values_list("sequence", "following")[:1000]
    )
    twice = numbered.values("sequence").annotate(n=Count("*")).filter(n__gt=1)  # index only
    return {
        # ``before is not None`` always (excluded above); the test narrows its type.
        "missing": [[before + 1, after - 1] for before, after in gaps if before is not None],
        "duplicated": list(twice.values_list("sequence", flat=True)),
    }


def _named(counted: dict[str, int], prefix: str) -> dict[str, int]:
    """The counters under a prefix, by the rest of their name (those at zero left out)."""
    return {name[len(prefix) :]: n for name, n in counted.items() if name.startswith(prefix) and n}
