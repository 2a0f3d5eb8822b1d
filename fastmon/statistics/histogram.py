"""Latency histograms with exponential buckets, as Prometheus's native histograms keep them:
bucket ``k`` holds durations in ``[2**(k/16), 2**((k+1)/16))`` seconds, so each value is
known within 2**(1/16) - 1 (4.4 %), whatever the spread, with a few dozen buckets per run
instead of a value per sample; a percentile interpolates between two such values, as
percentile_cont does between the exact ones."""

from __future__ import annotations

import math
from collections.abc import Mapping

BUCKETS_PER_DOUBLING = 16
# Durations under a microsecond (or negative: two hosts' clocks) are counted as zero.
ZERO = "zero"
_SMALLEST = 1e-6


def bucket_of(seconds: float) -> str:
    """The bucket a duration falls in, as its counter name suffix."""
    if seconds < _SMALLEST:
        return ZERO
    return str(math.floor(math.log2(seconds) * BUCKETS_PER_DOUBLING))


def percentiles(buckets: Mapping[str, int]) -> dict[str, float | None]:
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
