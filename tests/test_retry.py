"""The one retry schedule every fastmon loop uses."""

from __future__ import annotations

from fastmon.conf import fastmon_settings
from fastmon.retry import backoff_delay


def test_backoff_grows_exponentially_with_jitter_up_to_the_ceiling() -> None:
    delays = [[backoff_delay(attempt) for attempt in range(12)] for _ in range(20)]
    floor, ceiling = fastmon_settings.RETRY_MIN_S, fastmon_settings.RETRY_MAX_S
    for series in delays:
        assert floor / 2 <= series[0] <= floor
        assert all(ceiling / 2 <= d <= ceiling for d in series[7:])
    assert len({round(series[3], 6) for series in delays}) > 1  # jittered
    assert ceiling / 2 <= backoff_delay(100_000) <= ceiling  # days of outage: still bounded
