"""A run's content, or a part of it: the histograms (boost-histogram) per detector and the
counts beside them, filled from decoded hits, added exactly, and stored compactly.

Per detector: ``<DET>/occupancy`` (source x channel, one bin each), ``<DET>/adc``, ``<DET>/bx``
(bunch crossing within the TF) and ``<DET>/hits_per_tf``. The axes are integer-binned, so a
hit's bin is arithmetic: a batch is counted with ``np.add.at`` and ``np.bincount`` into flat
arrays, then added to the histograms' own storage, exactly and several times faster than
``Histogram.fill`` per hit. ETF1's hits are counted where they lie in the TF bytes, a cache-sized
chunk at a time (the decode+fill rate is what limits content monitoring: benchmarks/content.py);
any other decoder's from its per-hit arrays. All storage is double: uproot writes TH1D, TH2D.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

import boost_histogram as bh
import numpy as np
from boost_histogram.serialization import from_uhi, to_uhi
from django.utils.module_loading import import_string
from zlib_ng import zlib_ng

from fastmon.conf import fastmon_settings
from fastmon.content.decoding import Decoded
from fastmon.content.detectors import Detector, DetectorMap
from fastmon.content.etf1 import BlockDecoded, HitBlocks

logger = logging.getLogger("fastmon.content")

ADC_BINS, ADC_RANGE = 512, 4096  # 12-bit ADC; larger amplitudes fall in the overflow
BX_BINS, BX_RANGE = 512, 1 << 16
# Hits per TF of one detector: 0, 1, then 60 log-spaced bins up to a million.
HITS_PER_TF_EDGES = [0.0, 1.0, *np.geomspace(2, 1e6, 60).round(1).tolist()]
# Unmapped source ids listed by name; more are summed under "other".
MAX_UNMAPPED_IDS = 32
# Records counted at a time: each chunk's temporaries stay in the CPU's cache.
CHUNK_RECORDS = 1 << 14
# The integer bins as shifts of a 16-bit field (an ADC or BX bin is 8 or 128 values wide).
_ADC_SHIFT, _BX_SHIFT = (
    (ADC_RANGE // ADC_BINS).bit_length() - 1,
    (BX_RANGE // BX_BINS).bit_length() - 1,
)
assert ADC_RANGE == ADC_BINS << _ADC_SHIFT and BX_RANGE == BX_BINS << _BX_SHIFT

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

    # -- stored form: zlib (by zlib-ng: three times faster, a larger stream) of a JSON head
    # and the bins, float64, each histogram's in turn -----------------------------------------

    def dumps(self) -> bytes:
        head: dict[str, Any] = {"counts": self._counts(), "histograms": []}
        arrays = []
        for name, histogram in sorted(self.histograms.items()):
            uhi = to_uhi(histogram)
            values = np.ascontiguousarray(uhi["storage"].pop("values"), dtype="<f8")
            uhi.pop("writer_info", None)
            head["histograms"].append({"name": name, "uhi": uhi, "shape": values.shape})
            arrays.append(values.tobytes())
        encoded = json.dumps(head, default=json_default).encode()
        return zlib_ng.compress(len(encoded).to_bytes(4, "little") + encoded + b"".join(arrays), 1)

    @classmethod
    def loads(cls, data: bytes) -> Content:
        raw = zlib_ng.decompress(data)
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


def json_default(value: Any) -> Any:
    """numpy values as JSON (``json.dumps(..., default=json_default)``)."""
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
    """Add a batch's hits (and its corrupt and undecodable TFs) to ``content``: a value outside
    an axis goes where ``Histogram.fill`` would put it (a flow bin, or none for occupancy)."""
    content.tfs_decoded += len(decoded.decoded)
    content.undecodable += decoded.undecodable
    for broken in decoded.corrupt:
        key = broken.detector or ""
        content.corrupt[key] = content.corrupt.get(key, 0) + 1
        content.corrupt_first_reason = content.corrupt_first_reason or broken.reason
    if not len(decoded.decoded):
        return
    if isinstance(decoded, BlockDecoded):
        counts = _count_blocks(content, decoded.blocks, decoded.decoded, detectors)
    else:
        counts = _count_hits(content, decoded, detectors)
    _add(content, detectors, *counts)
    for task in configured_tasks():
        _add_task(content, task, decoded, detectors)


# A batch's bins, flat, per detector in turn: occupancy (``_Tables``' layout), adc and bx (each
# with its flow bins), and hits per TF (detector x decoded TF).
Counts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _count_blocks(content: Content, blocks: HitBlocks, tfs: np.ndarray,
                  detectors: DetectorMap) -> Counts:  # fmt: skip
    """The counts of hits that lie in blocks of records (``HitBlocks``), from values per block
    and the records' own fields, without copying the hits out first."""
    n, tables = len(detectors), _tables(detectors)
    det, _ = detectors.lookup(blocks.source)
    mapped = det >= 0
    if not mapped.all():
        ids, inverse = np.unique(blocks.source[~mapped], return_inverse=True)
        _add_unmapped(content, ids, np.bincount(inverse, weights=blocks.count[~mapped]))
    known, slot = np.where(mapped, det, 0), np.where(mapped, det, n)  # n: the dump slot
    # Counted in double, as the histograms store them (exact to 2**53; and add.at of 1.0 into
    # doubles is faster than of 1 into integers). Each has a dump bin past its real ones.
    counts = (np.zeros(tables.total + 1), np.zeros((n + 1) * (ADC_BINS + 2)),
              np.zeros((n + 1) * (BX_BINS + 2)))  # fmt: skip
    if len(blocks.count):  # a batch of TFs without hits has no blocks
        # A hit's occupancy bin is base + channel * stride (``_Tables``); its adc and bx bins,
        # its slot's first plus the field's bin.
        base = np.where(mapped, tables.offset[known] + blocks.source - tables.first[known],
                        tables.total)  # fmt: skip
        stride = np.where(mapped, tables.sources[known], 0)
        firsts = (slot * (ADC_BINS + 2) + 1, slot * (BX_BINS + 2) + 1)
        _count_records(blocks, (base, stride, *firsts), (tables.total, 0, n * (ADC_BINS + 2) + 1,
                       n * (BX_BINS + 2) + 1), *counts)  # fmt: skip
    # Hits per detector and TF, from the blocks' counts (every decoded TF: none is a count).
    column = np.searchsorted(tfs, blocks.tf)
    per_tf = np.bincount(slot * len(tfs) + column, weights=blocks.count,
                         minlength=(n + 1) * len(tfs)).reshape(n + 1, len(tfs))  # fmt: skip
    return (*counts, per_tf)


def _count_records(blocks: HitBlocks, per_block: tuple[np.ndarray, ...],
                   dump: tuple[int, ...], occupancy: np.ndarray, adcs: np.ndarray,
                   bxs: np.ndarray) -> None:  # fmt: skip
    """Count every record of the span the blocks cover, a chunk at a time (its temporaries
    stay in the CPU's cache): the records between blocks (headers) with the ``dump`` values,
    each block's with its own (``per_block``: occupancy base and stride, adc's first bin, bx's
    first bin). So each histogram is one ``add.at`` or ``bincount`` of an index made of a value
    per segment of records (``np.repeat``, cheap) and the record's field."""
    ends = blocks.first + blocks.count
    lengths = np.zeros(2 * len(ends), dtype=np.int64)  # between blocks, then a block, in turn
    lengths[2::2], lengths[1::2] = blocks.first[1:] - ends[:-1], blocks.count
    small = np.uint16 if max(len(adcs), len(bxs)) <= 1 << 16 else np.uint32
    segment = []
    for value, outside, dtype in zip(per_block, dump, (np.int64, np.int64, small, small),
                                     strict=True):  # fmt: skip
        column = np.full(len(lengths), outside, dtype=dtype)
        column[1::2] = value
        segment.append(column)
    base, stride, adc_first, bx_first = segment
    records = blocks.records[int(blocks.first[0]) : int(ends[-1])]
    segment_ends = np.cumsum(lengths)
    wanted = np.arange(CHUNK_RECORDS, len(records), CHUNK_RECORDS)
    cuts = [*np.unique(np.searchsorted(segment_ends, wanted) + 1).tolist(), len(lengths)]
    done = record = 0
    for cut in cuts:
        if cut <= done:
            continue
        lens, upto = lengths[done:cut], int(segment_ends[cut - 1])
        # The fields, copied out contiguous: one pass, after which each use is several times
        # faster than reading them strided from the records.
        channel, bx, adc = records[record:upto, :3].T.copy()
        index = np.repeat(stride[done:cut], lens)
        index *= channel
        index += np.repeat(base[done:cut], lens)
        np.add.at(occupancy, index, 1.0)
        adc >>= _ADC_SHIFT
        np.minimum(adc, ADC_BINS, out=adc)  # its last bin: the overflow
        adc = adc.astype(small, copy=False) + np.repeat(adc_first[done:cut], lens)
        adcs += np.bincount(adc, minlength=len(adcs))
        bx >>= _BX_SHIFT
        bx = bx.astype(small, copy=False) + np.repeat(bx_first[done:cut], lens)
        bxs += np.bincount(bx, minlength=len(bxs))
        done, record = cut, upto


def _count_hits(content: Content, decoded: Decoded, detectors: DetectorMap) -> Counts:
    """The same counts from any decoder's per-hit arrays."""
    index, _ = detectors.lookup(decoded.source)
    mapped = index >= 0
    if not mapped.all():
        ids, counts = np.unique(decoded.source[~mapped], return_counts=True)
        _add_unmapped(content, ids, counts)
    n, tables = len(detectors), _tables(detectors)
    det, source, channel = index[mapped], decoded.source[mapped], decoded.channel[mapped]
    inside = (channel >= 0) & (channel < tables.channels[det])
    at = det[inside]
    occupancy = np.bincount(tables.offset[at] + source[inside] - tables.first[at]
                            + channel[inside] * tables.sources[at],
                            minlength=tables.total)  # fmt: skip
    adc_bin = np.clip(decoded.adc[mapped] * ADC_BINS // ADC_RANGE + 1, 0, ADC_BINS + 1)
    adcs = np.bincount(det * (ADC_BINS + 2) + adc_bin, minlength=n * (ADC_BINS + 2))
    bx_bin = np.clip(decoded.bx[mapped] * BX_BINS // BX_RANGE + 1, 0, BX_BINS + 1)
    bxs = np.bincount(det * (BX_BINS + 2) + bx_bin, minlength=n * (BX_BINS + 2))
    batch = int(decoded.decoded.max()) + 1
    per_tf = np.bincount(det * batch + decoded.tf[mapped], minlength=n * batch)
    return occupancy, adcs, bxs, per_tf.reshape(n, batch)[:, decoded.decoded]


def _add_unmapped(content: Content, ids: np.ndarray, counts: np.ndarray) -> None:
    for source, count in zip(ids.tolist(), counts.tolist(), strict=True):
        content.unmapped[str(source)] = content.unmapped.get(str(source), 0) + int(count)
    _bound_unmapped(content.unmapped)


def _add(content: Content, detectors: DetectorMap, occupancy: np.ndarray, adcs: np.ndarray,
         bxs: np.ndarray, per_tf: np.ndarray) -> None:  # fmt: skip
    """A batch's counts into the detectors' histograms, in boost-histogram's own storage."""
    tables = _tables(detectors)
    for i, detector in enumerate(detectors):
        hists = _booked(content, detector)
        hists[3].fill(per_tf[i])
        hits = int(per_tf[i].sum())
        if not hits:
            continue
        content.hits[detector.name] = content.hits.get(detector.name, 0) + hits
        content.tfs[detector.name] = (content.tfs.get(detector.name, 0)
                                      + int(np.count_nonzero(per_tf[i])))  # fmt: skip
        start, size = int(tables.offset[i]), detector.n_sources * detector.channels
        # A 2D histogram's storage is column-major: its transpose matches the flat layout.
        hists[0].view().T[...] += occupancy[start : start + size].reshape(
            detector.channels, detector.n_sources
        )
        hists[1].view(flow=True)[...] += adcs[i * (ADC_BINS + 2) : (i + 1) * (ADC_BINS + 2)]
        hists[2].view(flow=True)[...] += bxs[i * (BX_BINS + 2) : (i + 1) * (BX_BINS + 2)]


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
    """Per detector index: its first source, sources, channels, and where its occupancy bins
    start in one flat array, in which a detector's bin of (source, channel) is ``offset +
    (source - first) + channel * sources`` (the source varies fastest, as in its histogram)."""

    first: np.ndarray
    sources: np.ndarray
    channels: np.ndarray
    offset: np.ndarray
    total: int


@lru_cache(maxsize=16)
def _tables(detectors: DetectorMap) -> _Tables:
    sizes = [d.n_sources * d.channels for d in detectors]
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    return _Tables(np.array([d.first_source for d in detectors], dtype=np.int64),
                   np.array([d.n_sources for d in detectors], dtype=np.int64),
                   np.array([d.channels for d in detectors], dtype=np.int64), offsets,
                   int(sum(sizes)))  # fmt: skip
