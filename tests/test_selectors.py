"""Reads: latency percentiles by PostgreSQL agree with their definition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fastmon.models import StfFile
from fastmon.statistics.percentiles import _interpolated, duration_percentiles

pytestmark = pytest.mark.django_db


def test_percentiles_from_postgresql_match_percentile_cont_computed_by_hand() -> None:
    start = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    delays = [0.1 * n * n for n in range(1, 38)]  # seconds, unevenly spread
    StfFile.objects.bulk_create(
        StfFile(stf_filename=f"swf.1.{n:06d}.stf", received_at=start,
                committed_at=start + timedelta(seconds=delay))
        for n, delay in enumerate(delays)
    )  # fmt: skip
    StfFile.objects.create(stf_filename="swf.1.999999.stf", received_at=start)  # not committed

    result = duration_percentiles(StfFile.objects.all(), "committed_at", "received_at")
    assert result["count"] == len(delays)
    for p in (50, 95, 99):
        assert result[f"p{p}"] == pytest.approx(_interpolated(sorted(delays), p / 100))
    assert duration_percentiles(StfFile.objects.none(), "committed_at", "received_at")["count"] == 0
