"""Qualities, as ALICE QC's checks return them: good, medium, bad, or null (no opinion, shown
as Unknown), and what a check says: a quality with its reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Quality(StrEnum):
    GOOD = "good"
    MEDIUM = "medium"
    BAD = "bad"
    NULL = "null"

    @property
    def severity(self) -> int:
        """Null < good < medium < bad: the worst of several is the one with the highest."""
        return _SEVERITY[self]


_SEVERITY = {Quality.NULL: 0, Quality.GOOD: 1, Quality.MEDIUM: 2, Quality.BAD: 3}


def worst(qualities: Iterable[str]) -> Quality:
    """The worst of these qualities; null when there is none (nothing known)."""
    return max((Quality(q) for q in qualities), key=lambda q: q.severity, default=Quality.NULL)


@dataclass(frozen=True)
class Verdict:
    quality: Quality
    reason: str = ""


def good(reason: str = "") -> Verdict:
    return Verdict(Quality.GOOD, reason)
