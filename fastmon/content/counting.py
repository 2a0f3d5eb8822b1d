"""Hits counted into the built-in histograms' bins, flat and in integers, before any histogram
is touched. The axes are integer-binned, so a hit's bin is arithmetic: ETF1's hits are counted
where they lie in the TF bytes, in one compiled pass (``compiled.count_hits``: the decode+fill
rate is what limits content monitoring, benchmarks/content.py); any other decoder's from its
per-hit arrays, with numpy. A ``Tally`` keeps counting batch after batch, so the histograms'
own storage (``histograms.fill``) is written once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fastmon.content import compiled
from fastmon.content.decoding import Decoded
from fastmon.content.detectors import DetectorMap
from fastmon.content.etf1 import BlockDecoded, HitBlocks

ADC_BINS, ADC_RANGE = 512, 4096  # 12-bit ADC; larger amplitudes fall in the overflow
BX_BINS, BX_RANGE = 512, 1 << 16
# The integer bins as shifts of a 16-bit field (an ADC or BX bin is 8 or 128 values wide).
_ADC_SHIFT, _BX_SHIFT = (
    (ADC_RANGE // ADC_BINS).bit_length() - 1,
    (BX_RANGE // BX_BINS).bit_length() - 1,
)
assert ADC_RANGE == ADC_BINS << _ADC_SHIFT and BX_RANGE == BX_BINS << _BX_SHIFT


class Tally:
    """One detector map's counts of any number of batches: ``occupancy`` in ``Tables``'
    layout, ``adcs`` and ``bxs`` per detector in turn with their flow bins, ``per_tf`` (hits
    per detector of each decoded TF, a detectors x TFs array per batch) and ``unmapped`` (hits
    by source id). Integers, exact: 32 bits until there could be more hits than they hold."""

    WIDEN_AT = 1 << 32  # hits from which the counts are kept in 64 bits

    def __init__(self, detectors: DetectorMap) -> None:
        n, self.detectors, self.tables = len(detectors), detectors, tables(detectors)
        self.occupancy: np.ndarray = np.zeros(self.tables.total, np.uint32)
        self.adcs: np.ndarray = np.zeros(n * (ADC_BINS + 2), np.uint32)
        self.bxs: np.ndarray = np.zeros(n * (BX_BINS + 2), np.uint32)
        self.per_tf: list[np.ndarray] = []
        self.unmapped: dict[int, int] = {}
        self._hits = 0

    def count(self, decoded: Decoded) -> None:
        """Add a batch's hits (of its decoded TFs: the corrupt ones have none)."""
        if not len(decoded.decoded):
            return
        hits = decoded.hits
        if self._hits + hits >= self.WIDEN_AT and self.occupancy.dtype != np.int64:
            self.occupancy, self.adcs, self.bxs = (
                a.astype(np.int64) for a in (self.occupancy, self.adcs, self.bxs)
            )
        self._hits += hits
        if isinstance(decoded, BlockDecoded):
            self.per_tf.append(self._blocks(decoded.blocks, decoded.decoded))
        else:
            self.per_tf.append(self._hit_arrays(decoded))

    def bins(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detector ``index``'s occupancy, adc and bx counts, shaped as its histograms'
        ``view(flow=True)``."""
        d, start = self.detectors.detectors[index], int(self.tables.offset[index])
        occupancy = self.occupancy[start : start + d.n_sources * d.channels]
        return (occupancy.reshape(d.n_sources, d.channels, order="F"),  # the source fastest
                self.adcs[index * (ADC_BINS + 2) : (index + 1) * (ADC_BINS + 2)],
                self.bxs[index * (BX_BINS + 2) : (index + 1) * (BX_BINS + 2)])  # fmt: skip

    def _blocks(self, blocks: HitBlocks, tfs: np.ndarray) -> np.ndarray:
        """Hits that lie in blocks, counted in one compiled pass from numbers per block."""
        n, t = len(self.detectors), self.tables
        det, channels = self.detectors.lookup(blocks.source)
        mapped = det >= 0
        if not mapped.all():
            self._unmapped(blocks.source[~mapped], blocks.count[~mapped])
        known, slot = np.where(mapped, det, 0), np.where(mapped, det, n)  # n: the unmapped
        # Per block: its occupancy base (-1: unmapped), stride and channels, and its
        # detector's first adc and bx bins (past their underflow).
        base, stride, limit, adc_first, bx_first = (np.asarray(c, dtype=np.int64) for c in (
            np.where(mapped, t.offset[known] + blocks.source - t.first[known], -1),
            t.sources[known], channels, known * (ADC_BINS + 2) + 1,
            known * (BX_BINS + 2) + 1))  # fmt: skip
        compiled.count_hits(compiled.word_views(blocks.data), blocks.start, blocks.count,
                            (base, stride, limit, adc_first, bx_first),
                            (self.occupancy, self.adcs, self.bxs),
                            (_ADC_SHIFT, ADC_BINS, _BX_SHIFT))  # fmt: skip
        # Hits per detector and TF, from the blocks' counts (every decoded TF: none is a count).
        column = np.searchsorted(tfs, blocks.tf)
        per_tf = np.bincount(slot * len(tfs) + column, weights=blocks.count,
                             minlength=(n + 1) * len(tfs))  # fmt: skip
        return per_tf.reshape(n + 1, len(tfs))[:n].astype(np.int64)

    def _hit_arrays(self, decoded: Decoded) -> np.ndarray:
        """The same counts from any decoder's per-hit arrays: a value outside an axis goes
        where ``Histogram.fill`` would put it (a flow bin, or none for occupancy)."""
        index, _ = self.detectors.lookup(decoded.source)
        mapped = index >= 0
        if not mapped.all():
            self._unmapped(decoded.source[~mapped], np.ones(int((~mapped).sum()), np.int64))
        n, t = len(self.detectors), self.tables
        det, source, channel = index[mapped], decoded.source[mapped], decoded.channel[mapped]
        inside = (channel >= 0) & (channel < t.channels[det])
        at = det[inside]
        occupancy = np.bincount(t.offset[at] + source[inside] - t.first[at]
                                + channel[inside] * t.sources[at], minlength=t.total)  # fmt: skip
        adc_bin = np.clip(decoded.adc[mapped] * ADC_BINS // ADC_RANGE + 1, 0, ADC_BINS + 1)
        adcs = np.bincount(det * (ADC_BINS + 2) + adc_bin, minlength=n * (ADC_BINS + 2))
        bx_bin = np.clip(decoded.bx[mapped] * BX_BINS // BX_RANGE + 1, 0, BX_BINS + 1)
        bxs = np.bincount(det * (BX_BINS + 2) + bx_bin, minlength=n * (BX_BINS + 2))
        for mine, theirs in zip((self.occupancy, self.adcs, self.bxs), (occupancy, adcs, bxs),
                                strict=True):  # fmt: skip
            mine += theirs.astype(mine.dtype)
        batch = int(decoded.decoded.max()) + 1
        per_tf = np.bincount(det * batch + decoded.tf[mapped], minlength=n * batch)
        return per_tf.reshape(n, batch)[:, decoded.decoded]

    def _unmapped(self, sources: np.ndarray, hits: np.ndarray) -> None:
        ids, inverse = np.unique(sources, return_inverse=True)
        for source, count in zip(ids.tolist(), np.bincount(inverse, weights=hits).tolist(),
                                 strict=True):  # fmt: skip
            self.unmapped[source] = self.unmapped.get(source, 0) + int(count)


@dataclass(frozen=True)
class Tables:
    """Per detector index: its first source, sources, channels, and where its occupancy bins
    start in one flat array, in which a detector's bin of (source, channel) is ``offset +
    (source - first) + channel * sources`` (the source varies fastest, as in its histogram)."""

    first: np.ndarray
    sources: np.ndarray
    channels: np.ndarray
    offset: np.ndarray
    total: int


@lru_cache(maxsize=16)
def tables(detectors: DetectorMap) -> Tables:
    sizes = [d.n_sources * d.channels for d in detectors]
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    return Tables(np.array([d.first_source for d in detectors], dtype=np.int64),
                  np.array([d.n_sources for d in detectors], dtype=np.int64),
                  np.array([d.channels for d in detectors], dtype=np.int64), offsets,
                  int(sum(sizes)))  # fmt: skip
