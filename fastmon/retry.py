"""The one retry schedule every fastmon loop uses (consumer, relays, heartbeats)."""

from __future__ import annotations

import random

from fastmon.conf import fastmon_settings


def backoff_delay(attempt: int, cap: float | None = None) -> float:
    """Exponential from RETRY_MIN_S to ``cap`` (RETRY_MAX_S), with jitter so restarts do not
    stampede."""
    cap = fastmon_settings.RETRY_MAX_S if cap is None else cap
    # The exponent is capped: an outage of days must not overflow a float.
    ceiling = min(cap, fastmon_settings.RETRY_MIN_S * 2 ** min(attempt, 30))
    return ceiling * random.uniform(0.5, 1.0)
