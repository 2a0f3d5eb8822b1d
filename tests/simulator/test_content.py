"""The simulator's ETF1 content: the same seed and name give the same bytes; the file decodes
whole with the built-in decoder, its index agrees with the offsets announced, and it is exactly
what etf1's own writer makes of the same hits; the content looks like a detector's (rates per
detector, channel profiles that are not flat, a pedestal and a signal peak, hits over the
filled bunch crossings); the size comes near the one asked for."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fastmon.content import etf1
from fastmon.content.decoding import Decoded
from fastmon.content.detectors import Detector, DetectorMap
from fastmon.simulator.content import (
    ADC_MAX,
    FILLED_SLOTS,
    ORBIT_SLOTS,
    Etf1Stf,
    default_detectors,
    profile_of,
)

pytestmark = pytest.mark.unit

MIB = 1024 * 1024


def generate(size: int = 4 * MIB, tf_count: int = 100, **options: object) -> tuple[bytes, Etf1Stf]:
    named = {"name": "swf.100900.000003.stf", **options}
    stf = Etf1Stf(size, tf_count, **named)  # type: ignore[arg-type]
    return b"".join(bytes(chunk) for chunk in stf.chunks()), stf


def decode(data: bytes, tf_count: int, detectors: DetectorMap | None = None) -> Decoded:
    boundaries = etf1.read_boundaries(lambda at, n: data[at : at + n], len(data))
    return etf1.Etf1Decoder().decode(data, tf_count, boundaries, detectors or default_detectors())


def hits_of(decoded: Decoded, detector: Detector) -> np.ndarray:
    return (decoded.source >= detector.first_source) & (decoded.source <= detector.last_source)


def test_the_same_seed_and_name_give_the_same_bytes() -> None:
    first, _ = generate(MIB, seed=7)
    assert generate(MIB, seed=7)[0] == first
    assert generate(MIB, seed=8)[0] != first
    assert generate(MIB, seed=7, name="swf.100900.000004.stf")[0] != first


def test_the_file_decodes_whole_and_its_index_is_the_offsets_announced() -> None:
    tf_count, sequence = 50, 3
    data, stf = generate(2 * MIB, tf_count, sequence=sequence)
    boundaries = etf1.read_boundaries(lambda at, n: data[at : at + n], len(data))
    assert boundaries == stf.tf_offsets and len(stf.tf_offsets) == tf_count + 1
    assert stf.tf_offsets[0] == 0 and stf.tf_offsets[-1] == len(data) - 8 * (tf_count + 1) - 16
    for given in (boundaries, None):  # by the index, and by the chain of TF sizes
        decoded = etf1.Etf1Decoder().decode(data, tf_count, given, default_detectors())
        assert decoded.corrupt == [] and decoded.undecodable == 0
        assert decoded.decoded.tolist() == list(range(tf_count))
        assert decoded.hits > 10_000
    # Each TF header: its index, its size, and first_bx increasing through the run.
    for n, (start, end) in enumerate(itertools.pairwise(stf.tf_offsets)):
        magic, _, _, tf_index, _, first_bx, size = etf1.TF_HEADER.unpack_from(data, start)
        assert (magic, tf_index, size) == (etf1.MAGIC, n, end - start)
        assert first_bx == (sequence * tf_count + n) * etf1.BX_PER_TF


def test_the_file_is_what_etf1s_own_writer_makes_of_its_hits() -> None:
    tf_count = 20
    data, _ = generate(256 * 1024, tf_count, sequence=2)
    decoded = decode(data, tf_count)
    tfs = []
    for n in range(tf_count):
        mine = decoded.tf == n
        hits = np.zeros(int(mine.sum()), dtype=etf1.HIT)
        for field in ("channel", "bx", "adc", "flags"):
            hits[field] = getattr(decoded, field)[mine]
        sources = decoded.source[mine]
        blocks = [(int(s), hits[sources == s]) for s in np.unique(sources)]
        tfs.append(etf1.encode_tf(n, (2 * tf_count + n) * etf1.BX_PER_TF, blocks))
    assert etf1.encode_stf(tfs) == data


@pytest.mark.parametrize(
    ("size", "tf_count"), [(64 * 1024, 10), (256 * 1024, 100), (4 * MIB, 1000), (16 * MIB, 300)]
)
def test_the_size_comes_near_the_one_asked_for(size: int, tf_count: int) -> None:
    data, stf = generate(size, tf_count)
    assert abs(len(data) - size) < 0.05 * size
    assert len(stf.tf_offsets) == tf_count + 1


def test_a_size_too_small_for_hits_gives_empty_tfs_still_whole() -> None:
    data, _ = generate(4096, 1000)
    assert len(data) == 1000 * etf1.TF_HEADER.size + 8 * 1001 + etf1.TRAILER.size
    decoded = decode(data, 1000)
    assert (decoded.hits, len(decoded.decoded), decoded.corrupt) == (0, 1000, [])


def test_each_detector_has_its_rate_a_profile_that_is_not_flat_and_a_pedestal_and_a_peak() -> None:
    decoded = decode(generate(8 * MIB, 200)[0], 200)
    per_source = {}
    for detector in default_detectors():
        mine = hits_of(decoded, detector)
        per_source[detector.name] = mine.sum() / detector.n_sources
        # Channels: 16 bands of the source's channels; far from flat (a flat profile's bands
        # would agree within a few per cent at these counts).
        bands = np.bincount(decoded.channel[mine] * 16 // detector.channels, minlength=16)
        assert bands.max() > 1.5 * bands.min(), (detector.name, bands)
        # ADC: the pedestal is the mode below 400, the signal's peak the mode above it (the
        # saturation bin left out), with a valley between them.
        profile = profile_of(detector)
        adc = np.bincount(decoded.adc[mine], minlength=ADC_MAX + 1)
        assert adc.sum() == mine.sum() and decoded.adc[mine].max() <= ADC_MAX
        smooth = np.convolve(adc, np.ones(33) / 33, mode="same")
        pedestal = int(adc[:400].argmax())
        peak = 400 + int(smooth[400:ADC_MAX].argmax())
        assert abs(pedestal - profile.pedestal) <= 3 * profile.noise, detector.name
        assert abs(peak - profile.peak) <= profile.spread, (detector.name, peak)
        valley = smooth[pedestal + 5 * int(profile.noise) : peak].min()
        assert valley < 0.2 * smooth[peak] and smooth[peak] < 0.5 * adc[pedestal], detector.name
    assert per_source["SVT"] > per_source["MPGD"] > per_source["dRICH"] > per_source["ZDC"] > 0


def test_hits_fill_the_tfs_bunch_crossings_but_not_the_abort_gaps() -> None:
    decoded = decode(generate(4 * MIB, 50)[0], 50)
    assert decoded.bx.min() >= 0 and decoded.bx.max() < etf1.BX_PER_TF
    assert (decoded.bx % ORBIT_SLOTS < FILLED_SLOTS).all()
    coarse = np.bincount(decoded.bx * 64 // etf1.BX_PER_TF, minlength=64)
    assert coarse.min() > 0.8 * coarse.mean()  # spread over the whole TF


def test_a_sites_own_map_gets_its_sources_and_a_profile_from_each_name() -> None:
    site = DetectorMap(
        [Detector("TOF", 10, 13, 256), Detector("Muon", 20, 21, 128), Detector("FHCal", 30, 30, 64)]
    )
    decoded = decode(generate(2 * MIB, 40, detectors=site)[0], 40, site)
    assert decoded.corrupt == [] and set(np.unique(decoded.source)) <= {10, 11, 12, 13, 20, 21, 30}
    for detector in site:
        mine = hits_of(decoded, detector)
        assert mine.sum() > 1000
        assert decoded.channel[mine].max() < detector.channels
        bands = np.bincount(decoded.channel[mine] * 8 // detector.channels, minlength=8)
        assert bands.max() > 1.3 * bands.min(), (detector.name, bands)
