"""What a check says: a quality (``fastmon.models.quality.Quality``) with its reason, and the
worst of several."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastmon.models.quality import Quality


def worst(qualities: Iterable[str]) -> Quality:
    """The worst of these qualities; null when there is none (nothing known)."""
    return max((Quality(q) for q in qualities), key=lambda q: q.severity, default=Quality.NULL)


@dataclass(frozen=True)
class Verdict:
    quality: Quality
    reason: str = ""


def good(reason: str = "") -> Verdict:
    return Verdict(Quality.GOOD, reason)
