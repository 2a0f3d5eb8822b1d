"""ETF1 files with known hits, for tests and host sites: what was written is returned, so a
test can decode exactly the sampled TF ranges on its own and compare with what fastmon
serves. And content filled directly, merged as the content loop merges it, for checks."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastmon.content import etf1
from fastmon.content.detectors import DetectorMap, detector_map
from fastmon.content.histograms import Content, book
from fastmon.models import ContentPartial, Run, StfFile
from fastmon.runtime.loops import ContentMerger


@dataclass(frozen=True)
class WrittenStf:
    offsets: list[int]  # each TF's, then the index's (what stf_ready's tf_offsets carries)
    source: np.ndarray  # every hit's, in file order
    channel: np.ndarray
    adc: np.ndarray
    bx: np.ndarray
    tf: np.ndarray  # every hit's TF

    def occupancy(self, detector: str, ranges: list[tuple[int, int]]) -> np.ndarray:
        """The (source, channel) counts of one detector's hits in these TF ranges, decoded
        independently of fastmon's decoder: straight from what was written."""
        found = detector_map()
        d = next(x for x in found if x.name == detector)
        chosen = np.zeros(len(self.tf), dtype=bool)
        for first, last in ranges:
            chosen |= (self.tf >= first) & (self.tf <= last)
        chosen &= (self.source >= d.first_source) & (self.source <= d.last_source)
        flat = (self.source[chosen] - d.first_source) * d.channels + self.channel[chosen]
        counts = np.bincount(flat, minlength=d.n_sources * d.channels)
        return counts.reshape(d.n_sources, d.channels).astype(float)


def write_etf1_stf(
    path: Path,
    tf_count: int = 100,
    hits_per_source: float = 2.0,
    seed: int = 0,
    detectors: DetectorMap | None = None,
    unmapped: tuple[int, ...] = (),
) -> WrittenStf:
    """An ETF1 STF of ``tf_count`` TFs, every source of the map (and the ``unmapped`` ids)
    sending Poisson(``hits_per_source``) hits a TF, channels within range."""
    rng = np.random.default_rng(seed)
    detectors = detectors or detector_map()
    sources = [(s, d.channels) for d in detectors for s in range(d.first_source,
                                                                 d.last_source + 1)]  # fmt: skip
    sources += [(s, 64) for s in unmapped]
    offsets, at, columns = [], 0, []
    with path.open("wb") as stream:
        for n in range(tf_count):
            blocks = []
            for source, channels in sources:
                hits = np.zeros(rng.poisson(hits_per_source), dtype=etf1.HIT)
                hits["channel"] = rng.integers(0, channels, len(hits))
                hits["bx"] = rng.integers(0, etf1.BX_PER_TF, len(hits))
                hits["adc"] = rng.integers(0, 4096, len(hits))
                blocks.append((source, hits))
                columns.append((np.full(len(hits), source), hits, np.full(len(hits), n)))
            tf = etf1.encode_tf(n, n * etf1.BX_PER_TF, blocks)
            offsets.append(at)
            stream.write(tf)
            at += len(tf)
        offsets.append(at)
        stream.write(etf1.index_and_trailer(offsets))
    every = np.concatenate([c[1] for c in columns])
    return WrittenStf(
        offsets,
        source=np.concatenate([c[0] for c in columns]).astype(np.int64),
        channel=every["channel"].astype(np.int64),
        adc=every["adc"].astype(np.int64),
        bx=every["bx"].astype(np.int64),
        tf=np.concatenate([c[2] for c in columns]).astype(np.int64),
    )


def reference_occupancy(path: Path, ranges: list[tuple[int, int]], detector: str) -> np.ndarray:
    """A detector's (source, channel) counts over these TF ranges of an ETF1 file, by a plain
    walk of the layout with ``struct`` (slow, simple, and sharing no code with fastmon's
    decoder): the reference a test compares what fastmon serves with."""
    d = next(x for x in detector_map() if x.name == detector)
    counts = np.zeros((d.n_sources, d.channels))
    data = path.read_bytes()
    _, tf_count, index_at = struct.unpack_from("<4sIQ", data, len(data) - 16)
    offsets = struct.unpack_from(f"<{tf_count + 1}Q", data, index_at)
    for first, last in ranges:
        for n in range(first, last + 1):
            at = offsets[n]
            n_sources = struct.unpack_from("<H", data, at + 6)[0]
            at += 32
            for _ in range(n_sources):
                source, n_hits = struct.unpack_from("<II", data, at)
                at += 16
                for k in range(n_hits):
                    channel = struct.unpack_from("<H", data, at + 8 * k)[0]
                    if d.first_source <= source <= d.last_source:
                        counts[source - d.first_source, channel] += 1
                at += 8 * n_hits
    return counts


def filled_content(adc_scale: float = 1.0, hits: int = 20_000, seed: int = 7) -> Content:
    """Content without a file: every detector of the map given ``hits`` hits, the same for
    the same seed; BEMC's ADC values scaled by ``adc_scale`` (a gain that moved)."""
    rng = np.random.default_rng(seed)
    made = Content(tfs_decoded=200)
    for detector in detector_map():
        made.histograms.update(book(detector))
        name = detector.name
        source = rng.integers(detector.first_source, detector.last_source + 1, hits)
        made.histograms[f"{name}/occupancy"].fill(source, rng.integers(0, detector.channels, hits))
        scale = adc_scale if name == "BEMC" else 1.0
        made.histograms[f"{name}/adc"].fill(rng.normal(1000, 300, hits) * scale)
        made.histograms[f"{name}/bx"].fill(rng.uniform(0, 1 << 16, hits))
        made.histograms[f"{name}/hits_per_tf"].fill(rng.poisson(hits / 200, 200))
        made.hits[name], made.tfs[name] = hits, 200
    return made


def merged(run_number: int, partial: Content, sequence: int = 1) -> Run:
    """The run (made if new) with an STF whose partial is ``partial``, merged by the content
    loop, which then runs the content checks."""
    run, _ = Run.objects.get_or_create(run_number=run_number)
    stf = StfFile.objects.create(stf_filename=f"run{run_number}_{sequence}.stf", run=run)
    ContentPartial.objects.create(run=run, stf=stf, data=partial.dumps())
    ContentMerger().iterate()
    return run
