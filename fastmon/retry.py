"""The one retry schedule every fastmon loop uses (consumer, relays, heartbeats, fastmon-tail)."""

from __future__ import annotations

import random

from fastmon.conf import fastmon_settings


def backoff_delay(attempt: int, cap: float | None = None, floor: float | None = None) -> float:
    """Exponential from ``floor`` (RETRY_MIN_S) to ``cap`` (RETRY_MAX_S), with jitter so
    restarts do not stampede. With both given, no setting is read (fastmon-tail has none)."""
    cap = fastmon_settings.RETRY_MAX_S if cap is None else cap
    floor = fastmon_settings.RETRY_MIN_S if floor is None else floor
    # The exponent is capped: an outage of days must not overflow a float.
    ceiling = min(cap, floor * 2 ** min(attempt, 30))
    return ceiling * random.uniform(0.5, 1.0)
