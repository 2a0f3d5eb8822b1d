"""Latency histograms with exponential buckets, as Prometheus's native histograms keep them:
bucket ``k`` holds durations in ``[2**(k/16), 2**((k+1)/16))`` seconds, so a percentile read
from them is within 2**(1/16) - 1 (4.4 %) of the exact one, whatever the spread, with a few
dozen buckets per run instead of a value per sample."""

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
    """Count and p50/p95/p99, as PostgreSQL's percentile_cont ranks them, interpolated
    geometrically inside the bucket that holds the rank."""
    ordered = sorted(
        ((-math.inf if name == ZERO else int(name), n) for name, n in buckets.items() if n > 0)
    )
    count = sum(n for _, n in ordered)
    if not count:
        return {"count": 0, "p50": None, "p95": None, "p99": None}
    result: dict[str, float | None] = {"count": count}
    for p in (50, 95, 99):
        rank = p / 100 * (count - 1)  # 0-based, as percentile_cont
        k, within = _bucket_at(ordered, rank)
        result[f"p{p}"] = 0.0 if k == -math.inf else 2 ** ((k + within) / BUCKETS_PER_DOUBLING)
    return result


def _bucket_at(ordered: list[tuple[float, int]], rank: float) -> tuple[float, float]:
    """The bucket holding a rank, and how far into it (0..1) the rank falls."""
    below = 0
    for k, n in ordered[:-1]:
        if rank < below + n:
            return k, (rank - below + 0.5) / n
        below += n
    k, n = ordered[-1]
    return k, (rank - below + 0.5) / n
