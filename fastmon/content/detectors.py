"""The detector map: which readout sources belong to which detector, and how many channels each
source has. A site sets it in ``FASTMON["DETECTORS"]``; the testbed's map is the default."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from fastmon.conf import fastmon_settings

# Source ids above this are never looked up in a table (they are unmapped whatever the map).
_TABLE_LIMIT = 1 << 20


@dataclass(frozen=True)
class Detector:
    name: str
    first_source: int
    last_source: int  # inclusive
    channels: int  # per source

    @property
    def n_sources(self) -> int:
        return self.last_source - self.first_source + 1


class DetectorMap:
    """The detectors, in their settings' order, with tables for looking sources up a whole
    array at a time (no per-hit Python)."""

    def __init__(self, detectors: Iterable[Detector]) -> None:
        self.detectors = tuple(detectors)
        problems = _problems(self.detectors)
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_setting(cls, value: Any) -> DetectorMap:
        """Parse ``FASTMON["DETECTORS"]``: a list of ``{"name", "sources": [first, last],
        "channels"}``; ValueError names what is wrong."""
        if not isinstance(value, list | tuple):
            raise ValueError("DETECTORS must be a list of {name, sources: [first, last], channels}")
        detectors = []
        for n, entry in enumerate(value):
            try:
                first, last = entry["sources"]
                detectors.append(Detector(str(entry["name"]), int(first), int(last),
                                          int(entry["channels"])))  # fmt: skip
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"DETECTORS[{n}] is not {{name, sources: [first, last], "
                                 f"channels}}: {exc!r}") from None  # fmt: skip
        return cls(detectors)

    def __iter__(self) -> Iterator[Detector]:
        return iter(self.detectors)

    def __len__(self) -> int:
        return len(self.detectors)

    @cached_property
    def table_size(self) -> int:
        return max((d.last_source for d in self.detectors), default=-1) + 1

    @cached_property
    def detector_of(self) -> np.ndarray:
        """Per source id below ``table_size``: the detector's index, or -1 (unmapped)."""
        table = np.full(self.table_size, -1, dtype=np.int32)
        for index, d in enumerate(self.detectors):
            table[d.first_source : d.last_source + 1] = index
        return table

    @cached_property
    def channels_of(self) -> np.ndarray:
        """Per source id below ``table_size``: its channel count (0 where unmapped)."""
        table = np.zeros(self.table_size, dtype=np.int64)
        for d in self.detectors:
            table[d.first_source : d.last_source + 1] = d.channels
        return table

    def lookup(self, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each source's detector index (-1: unmapped) and channel count (0: unmapped)."""
        if not self.table_size:  # an empty map: every source unmapped
            unmapped = np.full(len(sources), -1, dtype=np.int64)
            return unmapped, np.zeros(len(sources), dtype=np.int64)
        inside = (sources >= 0) & (sources < self.table_size)
        clipped = np.where(inside, sources, 0).astype(np.int64)
        detector = np.where(inside, self.detector_of[clipped], -1)
        channels = np.where(detector >= 0, self.channels_of[clipped], 0)
        return detector, channels


def _problems(detectors: tuple[Detector, ...]) -> list[str]:
    problems, names = [], set()
    for d in detectors:
        if not d.name or "/" in d.name:
            problems.append(f"detector name {d.name!r} must be non-empty, without '/'")
        if d.name in names:
            problems.append(f"detector {d.name} is named twice")
        names.add(d.name)
        if not 0 <= d.first_source <= d.last_source < _TABLE_LIMIT:
            problems.append(f"{d.name}: sources {d.first_source}-{d.last_source} must be "
                            f"0 <= first <= last < {_TABLE_LIMIT}")  # fmt: skip
        if not 0 < d.channels <= 65536:
            problems.append(f"{d.name}: channels must be 1..65536, not {d.channels}")
    ordered = sorted(detectors, key=lambda d: d.first_source)
    for a, b in itertools.pairwise(ordered):
        if b.first_source <= a.last_source:
            problems.append(f"{a.name} ({a.first_source}-{a.last_source}) and {b.name} "
                            f"({b.first_source}-{b.last_source}) share source ids")  # fmt: skip
    return problems


_cache: dict[str, DetectorMap] = {}


def detector_map() -> DetectorMap:
    """The site's map (parsed once per distinct setting)."""
    value = fastmon_settings.DETECTORS
    key = repr(value)
    if key not in _cache:
        _cache.clear()
        _cache[key] = DetectorMap.from_setting(value)
    return _cache[key]
