"""What a run's fast processing comes to, as operators ask it (the figures swf-monitor
documents but does not compute): slices by status, success rate, processing time per slice,
retries, workers seen against the target, and the latency from STF to result."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum
from prometheus_client.core import GaugeMetricFamily

from fastmon.models import Run, Slice
from fastmon.statistics.percentiles import duration_percentiles, percentiles


def processing_summary(run: Run) -> dict[str, Any]:
    slices = Slice.objects.filter(run=run)
    by_status = dict(slices.values_list("status").annotate(n=Count("id")))
    counts = {status: by_status.get(status, 0) for status in Slice.Status.values}
    answered = counts["done"] + counts["failed"]
    done = slices.filter(status=Slice.Status.DONE).exclude(processing_seconds=None)
    seconds = percentiles(done, F("processing_seconds"))
    with_sample = slices.exclude(sample=None)
    return {
        "run_number": run.run_number,
        "slices": {"total": sum(counts.values()), **counts},
        "success_rate": counts["done"] / answered if answered else None,
        "processing_seconds": {key: seconds[key] for key in ("count", "p50", "p95")},
        "retries": slices.aggregate(n=Sum("retries"))["n"] or 0,
        "workers": {
            "seen": slices.exclude(worker="").values("worker").distinct().count(),
            "targeted": run.fast_processing.get("target_worker_count"),
        },
        "latency_seconds": {
            "stf_to_result": _waterfall(with_sample, "sample__stf__received_at"),
            "sample_to_slice": duration_percentiles(with_sample, "queued_at", "sample__created_at"),
            "slice_to_result": duration_percentiles(slices, "completed_at", "queued_at"),
        },
    }


def _waterfall(slices: Any, start: str) -> dict[str, float | None]:
    """From ``start`` to the slice's result: the end of the fast path."""
    answered = slices.exclude(completed_at=None).exclude(**{f"{start}__isnull": True})
    return percentiles(
        answered, ExpressionWrapper(F("completed_at") - F(start), output_field=DurationField())
    )


class ProcessingCollector:
    """Prometheus figures of the newest run's fast processing, read from the database at each
    scrape (every process sees the same; nothing to add up across processes)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        run = Run.objects.order_by("-run_number").first()
        if run is None:
            return
        summary = processing_summary(run)
        number = str(run.run_number)
        slices = GaugeMetricFamily(
            "fastmon_run_slices", "Slices of the newest run, by status.", labels=["run", "status"]
        )
        for status in Slice.Status.values:
            slices.add_metric([number, status], summary["slices"][status])
        yield slices
        seconds = GaugeMetricFamily(
            "fastmon_run_slice_processing_seconds",
            "Processing time per done slice of the newest run, by quantile.",
            labels=["run", "quantile"],
        )
        for quantile in ("p50", "p95"):
            value = summary["processing_seconds"][quantile]
            if value is not None:
                seconds.add_metric([number, quantile.replace("p", "0.")], value)
        yield seconds
        yield GaugeMetricFamily(
            "fastmon_run_slice_retries",
            "Slices queued again, newest run.",
            value=summary["retries"],
        )
        yield GaugeMetricFamily(
            "fastmon_run_workers_seen", "Workers that answered, newest run.",
            value=summary["workers"]["seen"],
        )  # fmt: skip
