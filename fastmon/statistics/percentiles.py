"""Percentiles, in one home: p50/p95/p99 (and the count) of a queryset's values, computed by
PostgreSQL's percentile_cont (in Python elsewhere), and of exponential latency histograms.

The histograms are kept as Prometheus's native histograms keep them: bucket ``k`` holds
durations in ``[2**(k/16), 2**((k+1)/16))`` seconds, so each value is known within
2**(1/16) - 1 (4.4 %), whatever the spread, with a few dozen buckets per run instead of a value
per sample; a percentile interpolates between two such values, as percentile_cont does between
the exact ones."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Q,
    QuerySet,
)

# -- of stored values ---------------------------------------------------------------------------


class _Percentile(Aggregate):
    """PostgreSQL's percentile_cont over a number."""

    template = "percentile_cont(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


class _PercentileSeconds(_Percentile):
    """PostgreSQL's percentile_cont over a duration, in seconds."""

    template = (
        "percentile_cont(%(fraction)s) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM %(expressions)s))"
    )


def duration_percentiles(rows: QuerySet, later: str, earlier: str) -> dict[str, float | None]:
    """Count and p50/p95/p99 of ``later - earlier`` in seconds."""
    rows = rows.exclude(**{f"{later}__isnull": True}).exclude(**{f"{earlier}__isnull": True})
    return percentiles(rows, ExpressionWrapper(F(later) - F(earlier), output_field=DurationField()))


def stage_percentiles(
    rows: QuerySet, stages: Sequence[tuple[str, str, str]], **also: Aggregate
) -> tuple[dict[str, dict[str, float | None]], dict[str, Any]]:
    """``duration_percentiles`` of several stages ``(name, later, earlier)`` over the same rows,
    and the aggregates ``also``: on PostgreSQL in one scan of the rows, not one per stage."""
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        each = {name: duration_percentiles(rows, later, earlier) for name, later, earlier in stages}
        return each, rows.aggregate(**also) if also else {}
    aggregates: dict[str, Aggregate] = dict(also)
    for name, later, earlier in stages:
        both = Q(**{f"{later}__isnull": False, f"{earlier}__isnull": False})
        value = ExpressionWrapper(F(later) - F(earlier), output_field=DurationField())
        aggregates[f"{name}_count"] = Count("pk", filter=both)
        for p in (50, 95, 99):
            aggregates[f"{name}_p{p}"] = _PercentileSeconds(value, fraction=p / 100)
    found = rows.aggregate(**aggregates)
    stages_found = {
        name: {key: found[f"{name}_{key}"] for key in ("count", "p50", "p95", "p99")}
        for name, _, _ in stages
    }
    return stages_found, {key: found[key] for key in also}


def percentiles(rows: QuerySet, value: Any) -> dict[str, float | None]:
    """Count and p50/p95/p99 of ``value`` (a number, or a duration in seconds) over ``rows``:
    computed by PostgreSQL, which spares sending every value (a run has hundreds of thousands
    of samples); elsewhere (SQLite in the demo) in Python."""
    duration = isinstance(getattr(value, "output_field", None), DurationField)
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        aggregate = _PercentileSeconds if duration else _Percentile
        return rows.aggregate(
            count=Count("id"),
            **{f"p{p}": aggregate(value, fraction=p / 100) for p in (50, 95, 99)},
        )
    found = rows.annotate(v=value).values_list("v", flat=True)
    ordered = sorted(v.total_seconds() if duration else v for v in found if v is not None)
    if not ordered:
        return {"count": 0, "p50": None, "p95": None, "p99": None}
    return {
        "count": len(ordered),
        **{f"p{p}": _interpolated(ordered, p / 100) for p in (50, 95, 99)},
    }


def _interpolated(ordered: list[float], fraction: float) -> float:
    """percentile_cont's definition: linear interpolation between the closest ranks."""
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- of latency histograms ---------------------------------------------------------------------

BUCKETS_PER_DOUBLING = 16
# Durations under a microsecond (or negative: two hosts' clocks) are counted as zero.
ZERO = "zero"
_SMALLEST = 1e-6


def bucket_of(seconds: float) -> str:
    """The bucket a duration falls in, as its counter name suffix."""
    if seconds < _SMALLEST:
        return ZERO
    return str(math.floor(math.log2(seconds) * BUCKETS_PER_DOUBLING))


def bucket_percentiles(buckets: Mapping[str, int]) -> dict[str, float | None]:
    """Count and p50/p95/p99 as PostgreSQL's percentile_cont has them: linear interpolation
    between the two values closest in rank, each value placed geometrically inside its bucket
    by its rank there."""
    ordered = sorted(
        ((-math.inf if name == ZERO else int(name), n) for name, n in buckets.items() if n > 0)
    )
    count = sum(n for _, n in ordered)
    if not count:
        return {"count": 0, "p50": None, "p95": None, "p99": None}
    result: dict[str, float | None] = {"count": count}
    for p in (50, 95, 99):
        rank = p / 100 * (count - 1)  # 0-based, as percentile_cont
        below, above = _value_at(ordered, math.floor(rank)), _value_at(ordered, math.ceil(rank))
        result[f"p{p}"] = below + (above - below) * (rank - math.floor(rank))
    return result


def _value_at(ordered: list[tuple[float, int]], rank: int) -> float:
    """The estimated value of the ``rank``-th smallest (0-based)."""
    seen = 0
    for k, n in ordered:
        if rank < seen + n:
            if k == -math.inf:
                return 0.0
            return 2 ** ((k + (rank - seen + 0.5) / n) / BUCKETS_PER_DOUBLING)
        seen += n
    raise ValueError(f"rank {rank} is past the histogram's {seen} values")
