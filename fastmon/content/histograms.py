"""A run's content, or a part of it: the histograms (boost-histogram) per detector and the
counts beside them, filled from decoded hits, added exactly, and stored compactly.

Per detector: ``<DET>/occupancy`` (source x channel, one bin each), ``<DET>/adc``, ``<DET>/bx``
(bunch crossing within the TF) and ``<DET>/hits_per_tf``. Hits are counted into their bins by
``counting`` (exactly, and far faster than ``Histogram.fill`` per hit); ``fill`` adds the counts
of its batches to the histograms' own storage at once, and ``stored_fill`` (a sampled STF's
partial) writes them stored without making the histograms at all. All storage is double:
uproot writes TH1D, TH2D.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

import boost_histogram as bh
import numpy as np
from django.utils.module_loading import import_string

from fastmon.conf import fastmon_settings
from fastmon.content import stored
from fastmon.content.counting import ADC_BINS, ADC_RANGE, BX_BINS, BX_RANGE, Tally
from fastmon.content.decoding import Decoded
from fastmon.content.detectors import Detector, DetectorMap

logger = logging.getLogger("fastmon.content")

# Hits per TF of one detector: 0, 1, then 60 log-spaced bins up to a million.
HITS_PER_TF_EDGES = [0.0, 1.0, *np.geomspace(2, 1e6, 60).round(1).tolist()]
# Unmapped source ids listed by name; more are summed under "other".
MAX_UNMAPPED_IDS = 32
_KINDS = ("occupancy", "adc", "bx", "hits_per_tf")  # each detector's histograms, in this order
Task = Callable[[Decoded, DetectorMap], dict[str, bh.Histogram]]


def book(detector: Detector) -> dict[str, bh.Histogram]:
    """A detector's empty histograms, by their full names."""
    double = bh.storage.Double()
    return {
        f"{detector.name}/occupancy": bh.Histogram(
            bh.axis.Integer(
                detector.first_source,
                detector.last_source + 1,
                underflow=False,
                overflow=False,
                metadata="source",
            ),
            bh.axis.Integer(
                0, detector.channels, underflow=False, overflow=False, metadata="channel"
            ),
            storage=double,
        ),
        f"{detector.name}/adc": bh.Histogram(
            bh.axis.Regular(ADC_BINS, 0, ADC_RANGE, metadata="adc"), storage=double
        ),
        f"{detector.name}/bx": bh.Histogram(
            bh.axis.Regular(BX_BINS, 0, BX_RANGE, metadata="bx"), storage=double
        ),
        f"{detector.name}/hits_per_tf": _hits_per_tf(),
    }


def _hits_per_tf() -> bh.Histogram:
    return bh.Histogram(bh.axis.Variable(HITS_PER_TF_EDGES, metadata="hits per TF"),
                        storage=bh.storage.Double())  # fmt: skip


@lru_cache(maxsize=16)
def _structures(detectors: DetectorMap) -> dict[str, dict[str, Any]]:
    """Every booked histogram's structure (``stored.structure``), by name."""
    return {name: stored.structure(h) for d in detectors for name, h in book(d).items()}


@dataclass
class Content:
    """Histograms by name, and the counts that are not histograms."""

    histograms: dict[str, bh.Histogram] = field(default_factory=dict)
    tfs_decoded: int = 0
    undecodable: int = 0
    corrupt: dict[str, int] = field(default_factory=dict)  # by detector ("" : a TF header)
    corrupt_first_reason: str = ""
    unmapped: dict[str, int] = field(default_factory=dict)  # hits by source id
    hits: dict[str, int] = field(default_factory=dict)  # by detector
    tfs: dict[str, int] = field(default_factory=dict)  # TFs with hits, by detector

    @property
    def corrupt_tfs(self) -> int:
        return sum(self.corrupt.values())

    def __iadd__(self, other: Content) -> Content:
        for name, histogram in other.histograms.items():
            mine = self.histograms.get(name)
            if mine is None:
                self.histograms[name] = histogram.copy()
            elif mine.axes == histogram.axes:
                mine += histogram
            else:  # the map changed during the run: the newer shape wins from here on
                logger.warning("content: %s changed its axes; the run's bins restart", name)
                self.histograms[name] = histogram.copy()
        self.tfs_decoded += other.tfs_decoded
        self.undecodable += other.undecodable
        self.corrupt_first_reason = self.corrupt_first_reason or other.corrupt_first_reason
        pairs = [(self.corrupt, other.corrupt), (self.hits, other.hits),
                 (self.tfs, other.tfs), (self.unmapped, other.unmapped)]  # fmt: skip
        for mine_counts, theirs in pairs:
            for key, value in theirs.items():
                mine_counts[key] = mine_counts.get(key, 0) + value
        _bound_unmapped(self.unmapped)
        return self

    def summary(self) -> dict[str, Any]:
        """The counts as the API and the live events give them."""
        return {
            "tfs_decoded": self.tfs_decoded,
            "undecodable_tfs": self.undecodable,
            "corrupt_tfs": self.corrupt_tfs,
            "corrupt_by_detector": dict(sorted(self.corrupt.items())),
            "corrupt_first_reason": self.corrupt_first_reason,
            "unmapped_sources": dict(sorted(self.unmapped.items())),
            "detectors": {
                name: {"hits": self.hits.get(name, 0), "tfs": self.tfs.get(name, 0)}
                for name in sorted({*self.hits, *self.tfs})
            },
            "histograms": sorted(self.histograms),
        }

    def dumps(self) -> bytes:
        """The stored form (``stored``)."""
        return stored.write(self._counts(), _entries(sorted(self.histograms.items())))

    @classmethod
    def loads(cls, data: bytes) -> Content:
        counts, histograms = stored.read(data)
        content = cls(**counts)
        for name, histogram in histograms:
            if name in content.histograms:
                content += cls(histograms={name: histogram})
            else:
                content.histograms[name] = histogram
        return content

    def _counts(self) -> dict[str, Any]:
        return {"tfs_decoded": self.tfs_decoded, "undecodable": self.undecodable,
                "corrupt": self.corrupt, "corrupt_first_reason": self.corrupt_first_reason,
                "unmapped": self.unmapped, "hits": self.hits, "tfs": self.tfs}  # fmt: skip


def _bound_unmapped(unmapped: dict[str, int]) -> None:
    """Keep the most frequent MAX_UNMAPPED_IDS ids by name; sum the rest under "other"."""
    named = [k for k in unmapped if k != "other"]
    if len(named) <= MAX_UNMAPPED_IDS:
        return
    keep = set(sorted(named, key=lambda k: -unmapped[k])[:MAX_UNMAPPED_IDS])
    other = unmapped.pop("other", 0)
    for key in [k for k in named if k not in keep]:
        other += unmapped.pop(key)
    unmapped["other"] = other


def fill(content: Content, decoded: Decoded | Iterable[Decoded], detectors: DetectorMap) -> None:
    """Add a batch's hits (and its corrupt and undecodable TFs) to ``content``, or many
    batches': their counts reach the histograms' storage once, cheaper than a fill each."""
    tally = _tallied(content, [decoded] if isinstance(decoded, Decoded) else decoded, detectors)
    if not tally.per_tf:  # no TF decoded: nothing to book
        return
    per_tf = _per_detector(content, tally)
    for i, detector in enumerate(detectors):
        hists = _booked(content, detector)
        hists[3].fill(per_tf[i])
        if per_tf[i].any():
            for histogram, counts in zip(hists[:3], tally.bins(i), strict=True):
                histogram.view(flow=True)[...] += counts


def stored_fill(batches: Iterable[Decoded], detectors: DetectorMap) -> bytes:
    """What ``fill`` of a new ``Content`` with these batches, then ``dumps``, gives (``loads``
    reads it back the same), for less: the built-in histograms are written from their counts,
    never made. A sampled STF's partial."""
    content = Content()
    tally = _tallied(content, batches, detectors)
    entries = _entries(content.histograms.items())
    if tally.per_tf:
        per_tf, structures = _per_detector(content, tally), _structures(detectors)
        for i, detector in enumerate(detectors):
            hits_per_tf = _hits_per_tf()
            hits_per_tf.fill(per_tf[i])
            counts = (*tally.bins(i), np.asarray(hits_per_tf.view(flow=True)))
            for kind, values in zip(_KINDS, counts, strict=True):
                name = f"{detector.name}/{kind}"
                entries.append((name, structures[name], values))
    return stored.write(content._counts(), entries)


def _entries(histograms: Iterable[tuple[str, bh.Histogram]]) -> list[stored.Entry]:
    return [(name, stored.structure(h), np.asarray(h.view(flow=True))) for name, h in histograms]


def _tallied(content: Content, batches: Iterable[Decoded], detectors: DetectorMap) -> Tally:
    """The batches' hits counted, their TFs (decoded, corrupt, undecodable), unmapped sources
    and a site's tasks' histograms added to ``content``."""
    tally = Tally(detectors)
    for batch in batches:
        content.tfs_decoded += len(batch.decoded)
        content.undecodable += batch.undecodable
        for broken in batch.corrupt:
            key = broken.detector or ""
            content.corrupt[key] = content.corrupt.get(key, 0) + 1
            content.corrupt_first_reason = content.corrupt_first_reason or broken.reason
        if len(batch.decoded):
            tally.count(batch)
            for task in configured_tasks():
                _add_task(content, task, batch, detectors)
    for source, hits in tally.unmapped.items():
        content.unmapped[str(source)] = content.unmapped.get(str(source), 0) + hits
    _bound_unmapped(content.unmapped)
    return tally


def _per_detector(content: Content, tally: Tally) -> np.ndarray:
    """The tally's hits per detector and TF (detectors x TFs), their sums added to
    ``content``'s hits and TFs with hits."""
    per_tf = np.concatenate(tally.per_tf, axis=1)
    for detector, row in zip(tally.detectors, per_tf, strict=True):
        if row.any():
            name = detector.name
            content.hits[name] = content.hits.get(name, 0) + int(row.sum())
            content.tfs[name] = content.tfs.get(name, 0) + int(np.count_nonzero(row))
    return per_tf


def _booked(content: Content, detector: Detector) -> list[bh.Histogram]:
    names = [f"{detector.name}/{kind}" for kind in _KINDS]
    if any(name not in content.histograms for name in names):
        content.histograms.update(book(detector))
    return [content.histograms[name] for name in names]


def _add_task(content: Content, task: Task, decoded: Decoded, detectors: DetectorMap) -> None:
    """A site's task: its histograms join the content; a failing task is logged, never stops
    the others or the sample."""
    try:
        made = task(decoded, detectors)
        extra = Content(histograms={
            name: h for name, h in made.items()
            if isinstance(h, bh.Histogram) and name.count("/") == 1
        })  # fmt: skip
    except Exception:
        logger.exception("content task %r failed", task)
        return
    content += extra


@cache
def _tasks(paths: tuple[str, ...]) -> list[Task]:
    return [import_string(path) for path in paths]


def configured_tasks() -> list[Task]:
    return _tasks(tuple(fastmon_settings.CONTENT_TASKS))
