"""The window every time a message gives must fall in, from its body or its headers: one rule,
one home.

A time far from now is no DAQ's: a broken clock at best, a forged one at worst. The calendar's
ends are worse than wrong: year 1 or 9999 moved into a site's time zone leaves Python's
calendar, and every list and page that shows the row fails. Inside the window a time survives
any time zone, and latencies computed from it stay figures, not nonsense.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

logger = logging.getLogger("fastmon.ingest")

FIRST_YEAR, LAST_YEAR = 2000, 2099
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECONDS = re.compile(r"-?\d{1,20}", re.ASCII)


def sane_time(value: datetime) -> datetime:
    """The time itself when its year is in the window; else ``ValueError`` saying so."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"out of range (years {FIRST_YEAR} to {LAST_YEAR})")
    return value


def header_time(headers: Mapping[str, str], name: str) -> datetime | None:
    """A header's time in milliseconds since 1970 (the broker's ``timestamp``), or None: a
    header that is absent, not such a number, or outside the window is dropped, and the log
    says so (headers are input too)."""
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        if not _MILLISECONDS.fullmatch(str(raw)):
            raise ValueError("not a whole number of milliseconds")
        return sane_time(_EPOCH + timedelta(milliseconds=int(raw)))
    except (ValueError, OverflowError) as exc:
        logger.warning("dropped the STOMP header %s=%r of a message on %s: %s",
                       name, str(raw)[:100], headers.get("destination", "?"), exc)  # fmt: skip
        return None
