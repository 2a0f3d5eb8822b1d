"""What the pages, the API and the commands show: the dashboard, a run's page and the lists
they page through. The queries live here, not in views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from django.db.models import (
    Count,
    F,
    Prefetch,
    Q,
    QuerySet,
)
from django.db.models.functions import Substr
from django.utils import timezone

from fastmon.models import DeadLetter, Run, StfFile, TfSample
from fastmon.processing.figures import processing_summary
from fastmon.quality.flags import current_quality, overall_quality, run_quality
from fastmon.sampling import caps
from fastmon.statistics.read import achieved_fraction, run_statistics

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class RunCounts(TypedDict):
    """What ``runs_with_counts`` adds to each run."""

    stf_announced: int
    stf_sampled: int


def runs_with_counts() -> QuerySet[WithAnnotations[Run, RunCounts]]:
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
        "monitor_state", "monitor_file_id", "tf_boundaries",
    )  # fmt: skip


# The dashboard's latest TF samples: a screenful, the rest a link away.
LATEST_SAMPLES_SHOWN = 25
# A run's sequence gaps named on its page; the statistics (API) hold up to a thousand.
GAPS_SHOWN = 5
# What each cap of a sampling policy (``fastmon.sampling.caps``) is, in a shifter's words.
CAP_WORDS = {
    caps.PER_STF: "samples per STF",
    caps.PER_RUN_MINUTE: "samples per run-minute",
    caps.READ_BYTES_PER_MINUTE: "bytes read per minute",
}


def dashboard() -> dict[str, Any]:
    """The dashboard as first drawn; live events take it from there."""
    runs = list(runs_with_counts()[:10])
    current = runs[0] if runs else None
    samples = list(TfSample.objects.select_related("stf", "run").order_by("-id")[:200])
    recent_stfs = StfFile.objects.exclude(received_at__isnull=True).order_by("-id")
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
        "quality": overall_quality(current) if current else "null",
        "quality_now": current_quality(current) if current else "null",
        "tf_samples": samples[:LATEST_SAMPLES_SHOWN],
        "tf_samples_shown": LATEST_SAMPLES_SHOWN,
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
    statistics = run_statistics(run)
    missing = statistics["sequence"]["missing"]
    held_back = statistics["tf_samples_held_back"]
    return {
        "run": run,
        "stfs": stfs,
        "statistics": statistics,
        "gaps_shown": missing[:GAPS_SHOWN],
        "gaps_more": len(missing[GAPS_SHOWN:]),
        "held_back": sum(held_back.values()),
        "held_back_by_cap": [(CAP_WORDS.get(cap, cap), n) for cap, n in sorted(held_back.items())],
        "quality": run_quality(run)["overall"],
        "processing": processing_summary(run),
    }
