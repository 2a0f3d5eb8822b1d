"""What the simulator's STF files hold: ETF1 (``fastmon.content.etf1``) with realistic content,
deterministic from a seed and the file's name, generated with numpy a batch of TFs at a time
(no per-hit Python) and streamed, so a file never has to be in memory whole.

Per detector of the map: a hit rate (hits per source per TF, Poisson; a source without hits in
a TF has no block there), a channel profile that is not flat (a falloff, a few bands, or a
central bump), an ADC spectrum of a narrow pedestal and a Landau-like signal peak (Moyal) on
0..4095, and bunch crossings over the filled part of each orbit of the TF (EIC: 1160 of 1260
slots filled, an abort gap after them). The rates are scaled so that the file comes near the
size asked for (its real size is what the writer reports). Detector faults
(``detector_faults``) are done to the hits as they are drawn, from a generator of their own.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal

import numpy as np

from fastmon.conf import TESTBED_DETECTORS
from fastmon.content import etf1
from fastmon.content.detectors import Detector, DetectorMap
from fastmon.simulator.detector_faults import Damage, DetectorFault, noise_rate

ADC_MAX = 4095  # 12-bit ADC: larger amplitudes saturate here
ORBIT_SLOTS, FILLED_SLOTS = 1260, 1160  # EIC bunch slots per orbit, the filled ones first
BATCH_BYTES = 4 * 1024 * 1024  # generated and written at a time (about)
BATCH_CELLS = 1 << 20  # at most this many (TF, source) counts drawn at a time
_TABLE = 1 << 16  # inverse-CDF tables: one 16-bit draw picks a value
_SLOTS_PER_TF_HEADER = etf1.TF_HEADER.size // 8
_SLOTS_PER_SOURCE_HEADER = etf1.SOURCE_HEADER.size // 8
# The layout is written as 8-byte words: headers are whole words, and a source header is
# (source_id | n_hits << 32, reserved) in little-endian u64, as etf1.SOURCE_HEADER packs it.
assert etf1.TF_HEADER.size % 8 == 0 and etf1.HIT.itemsize == 8
assert etf1.SOURCE_HEADER.format == "<IIQ"

Shape = Literal["falloff", "bands", "central"]


@dataclass(frozen=True)
class Profile:
    """How one detector's hits look."""

    rate: float  # relative hits per source per TF (scaled to the file's size)
    shape: Shape  # of the channel profile
    width: float  # of the falloff, bands or bump, as a fraction of the channels
    pedestal: float  # ADC pedestal: mean, width, and the fraction of hits in it
    noise: float
    pedestal_fraction: float
    peak: float  # signal: most probable value and width (Moyal)
    spread: float


# The testbed's detectors (fastmon.conf.TESTBED_DETECTORS); others get a profile from their name.
TESTBED_PROFILES = {
    "SVT": Profile(4.0, "falloff", 0.3, 100.0, 3.0, 0.35, 1200.0, 110.0),
    "MPGD": Profile(2.0, "bands", 0.04, 110.0, 4.0, 0.30, 1500.0, 180.0),
    "BEMC": Profile(1.5, "central", 0.18, 90.0, 3.0, 0.25, 1800.0, 200.0),
    "dRICH": Profile(1.0, "bands", 0.02, 100.0, 2.5, 0.40, 900.0, 90.0),
    "ZDC": Profile(0.3, "central", 0.30, 120.0, 5.0, 0.20, 2000.0, 180.0),
}


def profile_of(detector: Detector) -> Profile:
    known = TESTBED_PROFILES.get(detector.name)
    if known is not None:
        return known
    h = zlib.crc32(detector.name.encode())
    shapes: tuple[Shape, ...] = ("falloff", "bands", "central")
    return Profile(1.0, shapes[h % 3], (0.25, 0.03, 0.2)[h % 3], 100.0, 3.0, 0.3,
                   1000.0 + (h >> 8) % 1000, 100.0 + (h >> 20) % 200)  # fmt: skip


@cache
def default_detectors() -> DetectorMap:
    """The testbed's map (``fastmon.conf.TESTBED_DETECTORS``), without a site's settings."""
    return DetectorMap.from_setting(TESTBED_DETECTORS)


# -- the distributions, as inverse-CDF tables -----------------------------------------------


def channel_pmf(detector: Detector) -> np.ndarray:
    """The probability of each channel of a source of ``detector`` (not flat)."""
    profile = profile_of(detector)
    x = (np.arange(detector.channels) + 0.5) / detector.channels
    w = profile.width
    if profile.shape == "falloff":
        weight = np.exp(-x / w) + 0.02
    elif profile.shape == "bands":
        centres = np.array([0.15, 0.4, 0.6, 0.85])
        weight = 0.1 + np.exp(-0.5 * ((x[:, None] - centres) / w) ** 2).sum(axis=1)
    else:
        weight = 0.05 + np.exp(-0.5 * ((x - 0.5) / w) ** 2)
    return weight / weight.sum()


def adc_pmf(detector: Detector) -> np.ndarray:
    """The probability of each ADC value 0..ADC_MAX: a gaussian pedestal and a Moyal signal
    (a Landau's shape: if Z is normal, -ln Z^2 is Moyal), what falls outside in the end bins."""
    p = profile_of(detector)
    edges = np.arange(ADC_MAX + 2) - 0.5
    erf, erfc = np.vectorize(math.erf), np.vectorize(math.erfc)
    normal = 0.5 * (1 + erf((edges - p.pedestal) / (p.noise * math.sqrt(2))))
    with np.errstate(over="ignore"):
        moyal = erfc(np.exp(-(edges - p.peak) / p.spread / 2) / math.sqrt(2))
    cdf = p.pedestal_fraction * normal + (1 - p.pedestal_fraction) * moyal
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.diff(cdf)


def inverse_table(pmf: np.ndarray) -> np.ndarray:
    """Value ``table[k]`` for a uniform 16-bit draw ``k``: each value gets about pmf * 2^16
    entries (resolution 2^-16)."""
    cdf = np.cumsum(pmf)
    quantiles = (np.arange(_TABLE) + 0.5) / _TABLE * cdf[-1]
    values = np.searchsorted(cdf, quantiles, side="right")
    return np.minimum(values, len(pmf) - 1).astype(np.uint16)


@lru_cache(maxsize=64)
def _tables(detector: Detector) -> tuple[np.ndarray, np.ndarray]:
    return inverse_table(channel_pmf(detector)), inverse_table(adc_pmf(detector))


@cache
def _bx_table() -> np.ndarray:
    """Bunch crossings of the TF whose slot in the orbit is filled, evenly."""
    bx = np.arange(etf1.BX_PER_TF)
    filled = bx[bx % ORBIT_SLOTS < FILLED_SLOTS]
    return filled[np.arange(_TABLE) * len(filled) // _TABLE].astype(np.uint16)


# -- the file ------------------------------------------------------------------------------


class Etf1Stf:
    """One STF file's bytes in ETF1: ``chunks()`` yields them in order (TFs a batch at a time,
    then the index and trailer); afterwards ``tf_offsets`` holds each TF's offset and, last,
    the index's (``tf_count + 1`` numbers). ``first_bx`` of TF ``i`` is
    ``(sequence * tf_count + i) * BX_PER_TF``: increasing through a run. ``faults``: the
    detector faults of this STF (``detector_faults``), drawn from a generator of their own."""

    def __init__(
        self,
        size: int,
        tf_count: int,
        *,
        seed: int = 0,
        name: str = "",
        sequence: int = 0,
        detectors: DetectorMap | None = None,
        faults: Sequence[DetectorFault] = (),
    ) -> None:
        if tf_count < 1:
            raise ValueError("tf_count must be at least 1")
        self.size, self.tf_count, self.sequence = size, tf_count, sequence
        chosen = default_detectors() if detectors is None else detectors
        self.detectors = sorted(chosen, key=lambda d: d.first_source)
        self.sources = np.concatenate(
            [np.zeros(0), *(np.arange(d.first_source, d.last_source + 1) for d in self.detectors)]
        ).astype(np.uint64)
        if len(self.sources) > 0xFFFF:  # n_sources is a u16 of the TF header
            raise ValueError(f"{len(self.sources)} sources: ETF1 holds at most 65535 a TF")
        columns = np.cumsum([0, *(d.n_sources for d in self.detectors)])
        self.columns = list(zip(columns[:-1].tolist(), columns[1:].tolist(), strict=True))
        relative = self._per_source(profile_of(d).rate for d in self.detectors)
        self.channels = self._per_source(d.channels for d in self.detectors).astype(np.int64)
        self.noise = self._per_source(noise_rate(faults, d) for d in self.detectors)
        self.rates = relative * _scale(relative, size, tf_count, self.noise)
        self.rng = _generator(seed, name)
        self.damage: Damage | None = None
        if faults:
            by_detector = zip(self.detectors, self.columns, strict=True)
            rates = {d.name: float(self.rates[a]) for d, (a, _) in by_detector}
            rng = _generator(seed, name, "faults")
            self.damage = Damage(faults, tf_count=tf_count, rates=rates, rng=rng, adc_max=ADC_MAX,
                                 draw=lambda d, n: self._hits(d, n, rng))  # fmt: skip
        self.tf_offsets: list[int] = []

    def _per_source(self, values: Iterable[float]) -> np.ndarray:
        """A value per detector, as one per source (column)."""
        return np.repeat(np.fromiter(values, float), [d.n_sources for d in self.detectors])

    def expected_bytes_per_tf(self) -> float:
        return _tf_bytes(self.rates + self.noise)

    def chunks(self) -> Iterator[memoryview]:
        per_tf = max(self.expected_bytes_per_tf(), 1.0)
        batch = max(1, min(int(BATCH_BYTES / per_tf), BATCH_CELLS // max(len(self.sources), 1)))
        offsets, at = [], 0
        for first in range(0, self.tf_count, batch):
            words, starts = self._batch(first, min(batch, self.tf_count - first))
            offsets.append(at + 8 * starts)
            at += words.nbytes
            yield words.view(np.uint8).data
        self.tf_offsets = [*np.concatenate(offsets).tolist(), at]
        yield memoryview(etf1.index_and_trailer(self.tf_offsets))

    def _batch(self, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """TFs ``first`` .. ``first + n - 1`` as little-endian 8-byte words, and where each
        starts (in words)."""
        counts = self.rng.poisson(self.rates, size=(n, len(self.sources)))
        drawn = []
        for detector, (a, b) in zip(self.detectors, self.columns, strict=True):
            total = int(counts[:, a:b].sum())
            hits = self._hits(detector, total, self.rng) if total else np.empty(0, etf1.HIT)
            if self.damage is not None:
                counts[:, a:b], hits = self.damage.apply(detector, counts[:, a:b], hits)
            drawn.append(hits)
        present = counts > 0
        block = np.where(present, _SLOTS_PER_SOURCE_HEADER + counts, 0)
        tf_words = _SLOTS_PER_TF_HEADER + block.sum(axis=1)
        tf_start = np.cumsum(tf_words) - tf_words
        block_start = tf_start[:, None] + _SLOTS_PER_TF_HEADER + np.cumsum(block, axis=1) - block
        words = np.empty(int(tf_words.sum()), dtype="<u8")
        # Source headers: source_id | n_hits << 32, then the reserved word.
        heads = block_start[present]
        words[heads] = np.broadcast_to(self.sources, counts.shape)[present] | (
            counts[present].astype(np.uint64) << np.uint64(32)
        )
        words[heads + 1] = 0
        for hits, (a, b) in zip(drawn, self.columns, strict=True):
            cells = counts[:, a:b].ravel()
            if len(hits):
                ends = np.cumsum(cells)
                first_hit = block_start[:, a:b].ravel() + _SLOTS_PER_SOURCE_HEADER
                place = np.repeat(first_hit - (ends - cells), cells)
                words[place + np.arange(len(hits))] = hits.view("<u8")
        raw = words.view(np.uint8).data
        n_sources = present.sum(axis=1).tolist()
        for i, (start, count) in enumerate(zip(tf_start.tolist(), n_sources, strict=True)):
            index = first + i
            first_bx = (self.sequence * self.tf_count + index) * etf1.BX_PER_TF
            etf1.TF_HEADER.pack_into(raw, 8 * start, etf1.MAGIC, etf1.VERSION, count, index,
                                     0, first_bx, 8 * int(tf_words[i]))  # fmt: skip
        for i in self.damage.corrupt_in(first, n) if self.damage is not None else ():
            self._break(words, first + i, int(tf_start[i]), present[i], block_start[i])
        return words, tf_start

    def _break(self, words: np.ndarray, index: int, start: int, present: np.ndarray,
               block_start: np.ndarray) -> None:  # fmt: skip
        """Make TF ``index`` (at word ``start``) corrupt, its size and the index untouched: in
        every other one its first hit's channel past its source's count (its detector's
        corrupt TF), else a bad version (the TF header's; a bad magic would make a sample
        starting there another format, not a corrupt TF)."""
        column = int(np.argmax(present))
        if index % 2 and present[column] and self.channels[column] <= 0xFFFF:
            at = int(block_start[column]) + _SLOTS_PER_SOURCE_HEADER
            words[at : at + 1].view(etf1.HIT)["channel"] = self.channels[column]
        else:
            words[start : start + 1].view("<u2")[2] = etf1.VERSION + 1  # bytes 4-5

    def _hits(self, detector: Detector, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` hits of ``detector`` (``etf1.HIT``), from one 64-bit draw each: a 16-bit part
        of it picks the channel, another the bunch crossing, another the ADC."""
        channel_table, adc_table = _tables(detector)
        draws = np.asarray(rng.bit_generator.random_raw(n), dtype=np.uint64)
        parts = draws.view(np.uint16).reshape(n, 4)
        hits = np.empty(n, dtype=etf1.HIT)
        hits["channel"] = channel_table[parts[:, 0]]
        hits["bx"] = _bx_table()[parts[:, 1]]
        hits["adc"] = adc_table[parts[:, 2]]
        hits["flags"] = 0
        return hits


def _tf_bytes(rates: np.ndarray) -> float:
    """A TF's expected size at these rates: its header, a block header per source with hits
    (a Poisson count is above 0 with probability 1 - e^-rate), 8 bytes a hit."""
    blocks = etf1.SOURCE_HEADER.size * -np.expm1(-rates) + etf1.HIT.itemsize * rates
    return etf1.TF_HEADER.size + float(blocks.sum())


def _generator(seed: int, name: str, *purpose: str) -> np.random.Generator:
    digest = hashlib.sha256("\0".join([str(seed), name, *purpose]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _scale(relative: np.ndarray, size: int, tf_count: int, extra: np.ndarray) -> float:
    """The factor of the relative rates that, with the ``extra`` hits per source per TF,
    makes the file's expected size ``size`` (0 when even empty TFs, the index and the trailer,
    or the extra hits, exceed it)."""
    fixed = 8 * (tf_count + 1) + etf1.TRAILER.size
    per_tf = (size - fixed) / tf_count
    if per_tf <= etf1.TF_HEADER.size or not relative.sum() > 0:
        return 0.0
    low, high = 0.0, per_tf / (etf1.HIT.itemsize * float(relative.sum()))  # too large a size
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (
            (middle, high) if _tf_bytes(relative * middle + extra) < per_tf else (low, middle)
        )
    return (low + high) / 2
