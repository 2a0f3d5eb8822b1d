"""A run's content, or a part of it: the histograms (boost-histogram) per detector and the
counts beside them, filled from decoded hits, added exactly, and stored compactly.

Per detector: ``<DET>/occupancy`` (source x channel, one bin each), ``<DET>/adc``, ``<DET>/bx``
(bunch crossing within the TF) and ``<DET>/hits_per_tf``. Fills are ``np.bincount`` into the
histograms' own storage: the axes are integer-binned, so a bin index is arithmetic, and this is
exact and about ten times faster than a 2D ``Histogram.fill`` (benchmarks/content.py). All
storage is double, so uproot writes TH1D and TH2D.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boost_histogram as bh
import numpy as np
from boost_histogram.serialization import from_uhi, to_uhi
from django.utils.module_loading import import_string

from fastmon.conf import fastmon_settings
from fastmon.content.decoding import Decoded
from fastmon.content.detectors import Detector, DetectorMap

logger = logging.getLogger("fastmon.content")

ADC_BINS, ADC_RANGE = 512, 4096  # 12-bit ADC; larger amplitudes fall in the overflow
BX_BINS, BX_RANGE = 512, 1 << 16
# Hits per TF of one detector: 0, 1, then 60 log-spaced bins up to a million.
HITS_PER_TF_EDGES = [0.0, 1.0, *np.geomspace(2, 1e6, 60).round(1).tolist()]
# Unmapped source ids listed by name; more are summed under "other".
MAX_UNMAPPED_IDS = 32

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
        f"{detector.name}/hits_per_tf": bh.Histogram(
            bh.axis.Variable(HITS_PER_TF_EDGES, metadata="hits per TF"), storage=double
        ),
    }


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

    # -- stored form: zlib of a JSON head and the bins, float64, each histogram's in turn ---

    def dumps(self) -> bytes:
        head: dict[str, Any] = {"counts": self._counts(), "histograms": []}
        arrays = []
        for name, histogram in sorted(self.histograms.items()):
            uhi = to_uhi(histogram)
            values = np.ascontiguousarray(uhi["storage"].pop("values"), dtype="<f8")
            uhi.pop("writer_info", None)
            head["histograms"].append({"name": name, "uhi": uhi, "shape": values.shape})
            arrays.append(values.tobytes())
        encoded = json.dumps(head, default=_json_default).encode()
        return zlib.compress(len(encoded).to_bytes(4, "little") + encoded + b"".join(arrays), 1)

    @classmethod
    def loads(cls, data: bytes) -> Content:
        raw = zlib.decompress(data)
        length = int.from_bytes(raw[:4], "little")
        head = json.loads(raw[4 : 4 + length])
        at, histograms = 4 + length, {}
        for entry in head["histograms"]:
            shape = tuple(entry["shape"])
            size = 8 * int(np.prod(shape))
            values = np.frombuffer(raw, dtype="<f8", count=size // 8, offset=at).reshape(shape)
            at += size
            uhi = entry["uhi"]
            uhi["storage"]["values"] = values.copy()
            histograms[entry["name"]] = from_uhi(uhi)
        return cls(histograms=histograms, **head["counts"])

    def _counts(self) -> dict[str, Any]:
        return {"tfs_decoded": self.tfs_decoded, "undecodable": self.undecodable,
                "corrupt": self.corrupt, "corrupt_first_reason": self.corrupt_first_reason,
                "unmapped": self.unmapped, "hits": self.hits, "tfs": self.tfs}  # fmt: skip


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


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


def fill(content: Content, decoded: Decoded, detectors: DetectorMap) -> None:
    """Add a batch's hits (and its corrupt and undecodable TFs) to ``content``."""
    content.tfs_decoded += len(decoded.decoded)
    content.undecodable += decoded.undecodable
    for broken in decoded.corrupt:
        key = broken.detector or ""
        content.corrupt[key] = content.corrupt.get(key, 0) + 1
        content.corrupt_first_reason = content.corrupt_first_reason or broken.reason
    if not len(decoded.decoded):
        return
    index, _ = detectors.lookup(decoded.source)
    mapped = index >= 0
    if not mapped.all():
        ids, counts = np.unique(decoded.source[~mapped], return_counts=True)
        for source, count in zip(ids.tolist(), counts.tolist(), strict=True):
            content.unmapped[str(source)] = content.unmapped.get(str(source), 0) + count
        _bound_unmapped(content.unmapped)
    tables = _Tables.of(detectors)
    det, source = index[mapped], decoded.source[mapped]
    channel, adc, bx, tf = (decoded.channel[mapped], decoded.adc[mapped], decoded.bx[mapped],
                            decoded.tf[mapped])  # fmt: skip
    n = len(detectors)
    occupancy = np.bincount(tables.offset[det] + (source - tables.first[det]) * tables.channels[det]
                            + channel, minlength=tables.total)  # fmt: skip
    adc_bin = np.minimum(adc * ADC_BINS // ADC_RANGE + 1, ADC_BINS + 1)  # 0: under, last: over
    adcs = np.bincount(det * (ADC_BINS + 2) + adc_bin, minlength=n * (ADC_BINS + 2))
    bxs = np.bincount(det * BX_BINS + bx * BX_BINS // BX_RANGE, minlength=n * BX_BINS)
    batch = int(decoded.decoded.max()) + 1
    per_tf = np.bincount(det * batch + tf, minlength=n * batch).reshape(n, batch)
    per_tf = per_tf[:, decoded.decoded]
    for i, detector in enumerate(detectors):
        hists = _booked(content, detector)
        start = tables.offset[i]
        size = detector.n_sources * detector.channels
        hists[0].view()[...] += occupancy[start : start + size].reshape(
            detector.n_sources, detector.channels
        )
        hists[1].view(flow=True)[...] += adcs[i * (ADC_BINS + 2) : (i + 1) * (ADC_BINS + 2)]
        hists[2].view()[...] += bxs[i * BX_BINS : (i + 1) * BX_BINS]
        hists[3].fill(per_tf[i])
        hits = int(per_tf[i].sum())
        if hits:
            content.hits[detector.name] = content.hits.get(detector.name, 0) + hits
            content.tfs[detector.name] = (content.tfs.get(detector.name, 0)
                                          + int(np.count_nonzero(per_tf[i])))  # fmt: skip
    for task in configured_tasks():
        _add_task(content, task, decoded, detectors)


def _booked(content: Content, detector: Detector) -> list[bh.Histogram]:
    names = [f"{detector.name}/{kind}" for kind in ("occupancy", "adc", "bx", "hits_per_tf")]
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


@dataclass(frozen=True)
class _Tables:
    """Per detector index: its first source, channels and where its occupancy bins start in
    one flat array."""

    first: np.ndarray
    channels: np.ndarray
    offset: np.ndarray
    total: int

    @classmethod
    def of(cls, detectors: DetectorMap) -> _Tables:
        sizes = [d.n_sources * d.channels for d in detectors]
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        return cls(np.array([d.first_source for d in detectors], dtype=np.int64),
                   np.array([d.channels for d in detectors], dtype=np.int64), offsets,
                   int(sum(sizes)))  # fmt: skip
