"""Percentiles: by PostgreSQL's percentile_cont, they agree with their definition; from the
latency histograms, they stay within a bucket of the exact ones."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from fastmon.models import StfFile
from fastmon.statistics.percentiles import (
    _interpolated,
    bucket_of,
    bucket_percentiles,
    duration_percentiles,
)
from fastmon.testing.messages import stf_name

BOUND = 2 ** (1 / 16) - 1  # a bucket's width: the histogram's worst relative error


@pytest.mark.django_db
def test_percentiles_from_postgresql_match_percentile_cont_computed_by_hand() -> None:
    start = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    delays = [0.1 * n * n for n in range(1, 38)]  # seconds, unevenly spread
    StfFile.objects.bulk_create(
        StfFile(stf_filename=stf_name(1, n), received_at=start,
                committed_at=start + timedelta(seconds=delay))
        for n, delay in enumerate(delays)
    )  # fmt: skip
    StfFile.objects.create(stf_filename="swf.1.999999.stf", received_at=start)  # not committed

    result = duration_percentiles(StfFile.objects.all(), "committed_at", "received_at")
    assert result["count"] == len(delays)
    for p in (50, 95, 99):
        assert result[f"p{p}"] == pytest.approx(_interpolated(sorted(delays), p / 100))
    assert duration_percentiles(StfFile.objects.none(), "committed_at", "received_at")["count"] == 0


def exact(values: list[float]) -> dict[str, float]:
    """percentile_cont's p50/p95/p99 (the "inclusive" method is its definition)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {f"p{p}": cuts[p - 1] for p in (50, 95, 99)}


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_are_within_a_bucket_of_the_exact_ones(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(rng.uniform(-6, 3), rng.uniform(0.1, 3)) for _ in range(5000)]
    buckets: dict[str, int] = {}
    for value in values:
        buckets[bucket_of(value)] = buckets.get(bucket_of(value), 0) + 1
    found = bucket_percentiles(buckets)
    assert found["count"] == len(values)
    for name, want in exact(values).items():
        assert found[name] == pytest.approx(want, rel=BOUND), name


def test_histogram_edges() -> None:
    assert bucket_percentiles({}) == {"count": 0, "p50": None, "p95": None, "p99": None}
    # Clock skew (negative) and instants count as zero; one value is its own percentiles.
    assert bucket_of(-0.5) == bucket_of(0.0) == "zero"
    assert bucket_percentiles({"zero": 3, bucket_of(2.0): 1})["p50"] == 0.0
    assert bucket_percentiles({bucket_of(2.0): 1})["p99"] == pytest.approx(2.0, rel=BOUND)


def test_a_percentile_between_two_far_buckets_interpolates_as_percentile_cont() -> None:
    found = bucket_percentiles({bucket_of(1.0): 1, bucket_of(1024.0): 1})
    assert found["p50"] == pytest.approx((1.0 + 1024.0) / 2, rel=BOUND)
    assert found["p99"] == pytest.approx(1.0 + 0.99 * 1023.0, rel=BOUND)
