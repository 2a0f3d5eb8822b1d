"""A batch's hits filled into histograms: bin for bin what boost-histogram's own ``fill`` makes
of the same hits, added exactly, stored and loaded exactly, written by uproot, with unmapped
sources counted (boundedly) and a site's tasks adding theirs."""

from __future__ import annotations

import logging
from pathlib import Path

import boost_histogram as bh
import numpy as np
import pytest
import uproot
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmon.conf import TESTBED_DETECTORS
from fastmon.content import etf1
from fastmon.content.counting import Tally
from fastmon.content.decoding import Corrupt, Decoded
from fastmon.content.detectors import DetectorMap
from fastmon.content.histograms import MAX_UNMAPPED_IDS, Content, book, fill, stored_fill

pytestmark = pytest.mark.unit

TESTBED = DetectorMap.from_setting(TESTBED_DETECTORS)
MAPPED = [s for d in TESTBED for s in range(d.first_source, d.last_source + 1)]
CHANNELS = {s: d.channels for d in TESTBED for s in range(d.first_source, d.last_source + 1)}
UNMAPPED = [0, 99, 132, 5000, 70000, 2**32 - 1]
KINDS = ("occupancy", "adc", "bx", "hits_per_tf")


def random_stf(seed: int, tfs: int = 12, unmapped: list[int] | None = None
               ) -> tuple[bytes, list[int]]:  # fmt: skip
    """ETF1 TFs over the testbed's sources and a few unmapped ones, and their offsets: channels
    falling from 0, ADCs past the axis (overflow) among them, BXs over the whole TF."""
    rng = np.random.default_rng(seed)
    sources = MAPPED + (UNMAPPED if unmapped is None else unmapped)
    parts = []
    for n in range(tfs):
        chosen = rng.choice(sources, size=int(rng.integers(0, len(sources))), replace=False)
        blocks = []
        for source in sorted(chosen.tolist()):
            hits = np.zeros(int(rng.poisson(6)), dtype=etf1.HIT)
            limit = CHANNELS.get(source, 65536)
            hits["channel"] = np.minimum(rng.exponential(limit / 5, len(hits)), limit - 1)
            hits["bx"] = rng.integers(0, 1 << 16, len(hits))
            hits["adc"] = np.where(rng.random(len(hits)) < 0.1, rng.integers(4000, 65536,
                                   len(hits)), rng.gamma(2, 300, len(hits)))  # fmt: skip
            hits["flags"] = rng.integers(0, 4, len(hits))
            blocks.append((source, hits))
        parts.append(etf1.encode_tf(n, n * etf1.BX_PER_TF, blocks))
    data = etf1.encode_stf(parts)
    boundaries = etf1.read_boundaries(lambda at, size: data[at : at + size], len(data))
    assert boundaries is not None
    return data, boundaries


def random_batch(seed: int, tfs: int = 12, unmapped: list[int] | None = None) -> Decoded:
    """A random batch (``random_stf``), decoded."""
    data, boundaries = random_stf(seed, tfs, unmapped)
    decoded = etf1.Etf1Decoder().decode(data, tfs, boundaries, TESTBED)
    assert decoded.corrupt == [] and decoded.hits > 0
    return decoded


def plain(decoded: Decoded) -> Decoded:
    """The same hits as a decoder that gives only the per-hit arrays would give them."""
    fields = ("source", "channel", "bx", "adc", "flags", "tf", "decoded")
    return Decoded(*(getattr(decoded, f) for f in fields), list(decoded.corrupt),
                   decoded.undecodable)  # fmt: skip


def reference(batches: list[Decoded]) -> dict[str, bh.Histogram]:
    """Booked the same way, filled by boost-histogram itself, hit by hit."""
    out: dict[str, bh.Histogram] = {}
    for detector in TESTBED:
        booked = book(detector)
        for decoded in batches:
            mine = (decoded.source >= detector.first_source) & (
                decoded.source <= detector.last_source
            )
            name = detector.name
            booked[f"{name}/occupancy"].fill(decoded.source[mine], decoded.channel[mine])
            booked[f"{name}/adc"].fill(decoded.adc[mine])
            booked[f"{name}/bx"].fill(decoded.bx[mine])
            per_tf = [int(np.sum(mine & (decoded.tf == n))) for n in decoded.decoded.tolist()]
            booked[f"{name}/hits_per_tf"].fill(per_tf)
        out.update(booked)
    return out


def assert_same_histograms(mine: dict[str, bh.Histogram], theirs: dict[str, bh.Histogram]) -> None:
    assert sorted(mine) == sorted(theirs)
    for name, histogram in theirs.items():
        assert mine[name].axes == histogram.axes, name
        assert np.array_equal(mine[name].view(flow=True), histogram.view(flow=True)), name


def assert_same_content(a: Content, b: Content) -> None:
    assert_same_histograms(a.histograms, b.histograms)
    assert a.summary() == b.summary()
    assert (a.unmapped, a.hits, a.tfs, a.corrupt) == (b.unmapped, b.hits, b.tfs, b.corrupt)


@pytest.mark.parametrize("seed", range(12))
def test_fill_is_bin_for_bin_boost_histograms_own_fill(seed: int) -> None:
    batch = random_batch(seed)
    expected = reference([batch])
    for form in (batch, plain(batch)):  # the hits in place, and as per-hit arrays
        content = Content()
        fill(content, form, TESTBED)
        assert_same_histograms(content.histograms, expected)
        assert content.tfs_decoded == 12 and content.undecodable == 0 and content.corrupt == {}
        for detector in TESTBED:
            mine = (batch.source >= detector.first_source) & (batch.source <= detector.last_source)
            assert content.hits.get(detector.name, 0) == int(mine.sum())
            assert content.tfs.get(detector.name, 0) == len(set(batch.tf[mine].tolist()))
        unmapped = ~np.isin(batch.source, MAPPED)
        ids, counts = np.unique(batch.source[unmapped], return_counts=True)
        assert content.unmapped == {str(i): c for i, c in zip(ids.tolist(), counts.tolist(),
                                                               strict=True)}  # fmt: skip


def test_counts_past_32_bits_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts are kept in 32 bits until a tally could hold more hits than they do."""
    monkeypatch.setattr(Tally, "WIDEN_AT", 100)
    batches = [random_batch(seed, tfs=3) for seed in (51, 52)]
    tally = Tally(TESTBED)
    for batch in batches:
        tally.count(batch)
    assert tally.occupancy.dtype == np.int64
    content = Content()
    fill(content, batches, TESTBED)
    assert_same_histograms(content.histograms, reference(batches))


def test_tfs_without_hits_count_in_hits_per_tf() -> None:
    blocks = [(300, np.zeros(0, dtype=etf1.HIT)), (5000, np.zeros(3, dtype=etf1.HIT))]
    data = etf1.encode_stf([etf1.encode_tf(0, 0, []), etf1.encode_tf(1, 0, blocks)])
    decoded = etf1.Etf1Decoder().decode(data, 2, None, TESTBED)
    assert decoded.decoded.tolist() == [0, 1] and decoded.hits == 3
    content = Content()
    fill(content, decoded, TESTBED)
    assert_same_histograms(content.histograms, reference([decoded]))
    assert content.histograms["BEMC/hits_per_tf"].view()[0] == 2  # two TFs, none with hits
    assert content.hits == {} and content.unmapped == {"5000": 3}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 12), st.integers(0, 7),
       st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6))  # fmt: skip
def test_fill_of_damaged_batches_is_boosts_fill(
    seed: int, tfs: int, pad: int, changes: list[tuple[int, int]]
) -> None:
    """Whatever survives decoding is counted as boost-histogram counts it, at any alignment
    of the bytes in memory."""
    data, boundaries = random_stf(seed, tfs)
    damaged = bytearray(bytes(pad) + data)
    for place, value in changes:
        damaged[pad + place % boundaries[-1]] = value
    decoded = etf1.Etf1Decoder().decode(memoryview(damaged)[pad:], tfs, boundaries, TESTBED)
    content = Content()
    fill(content, decoded, TESTBED)
    assert_same_histograms(content.histograms, reference([decoded]) if len(decoded.decoded) else {})
    assert content.tfs_decoded + content.corrupt_tfs + content.undecodable == tfs


def test_a_map_of_many_detectors() -> None:
    """Past 126 detectors, a slot's adc and bx bins need more than 16 bits."""
    many = DetectorMap.from_setting([{"name": f"D{i}", "sources": [i, i], "channels": 4}
                                     for i in range(300)])  # fmt: skip
    rng = np.random.default_rng(2)
    blocks = [(s, np.array([(rng.integers(0, 4), rng.integers(0, 1 << 16),
                             rng.integers(0, 1 << 16), 0) for _ in range(3)], dtype=etf1.HIT))
              for s in range(0, 310, 7)]  # fmt: skip
    data = etf1.encode_stf([etf1.encode_tf(0, 0, blocks)])
    decoded = etf1.Etf1Decoder().decode(data, 1, None, many)
    assert decoded.corrupt == [] and decoded.hits == 3 * len(blocks)
    content = Content()
    fill(content, decoded, many)
    expected = {}
    for detector in many:
        booked = book(detector)
        mine = decoded.source == detector.first_source
        booked[f"{detector.name}/occupancy"].fill(decoded.source[mine], decoded.channel[mine])
        booked[f"{detector.name}/adc"].fill(decoded.adc[mine])
        booked[f"{detector.name}/bx"].fill(decoded.bx[mine])
        booked[f"{detector.name}/hits_per_tf"].fill([int(mine.sum())])
        expected.update(booked)
    assert_same_histograms(content.histograms, expected)
    assert content.unmapped == {"301": 3, "308": 3}


def test_values_outside_the_axes_go_where_boost_puts_them() -> None:
    """A decoder that is not ETF1 may give anything: the flow bins, or no occupancy bin."""
    source = np.array([300, 300, 300, 300, 100, 5000])
    hit = Decoded(source=source, channel=np.array([0, 511, 512, -1, 4095, 1]),
                  bx=np.array([0, 65535, 65536, -5, 70000, 1]),
                  adc=np.array([-1, 4095, 4096, 10**6, -100, 1]), flags=np.zeros(6, np.int64),
                  tf=np.array([0, 0, 1, 1, 3, 3]), decoded=np.array([0, 1, 3]))  # fmt: skip
    content = Content()
    fill(content, hit, TESTBED)
    assert_same_histograms(content.histograms, reference([hit]))
    assert content.unmapped == {"5000": 1} and content.hits == {"BEMC": 4, "SVT": 1}


def test_adding_contents_is_filling_both_batches_into_one() -> None:
    first, second = random_batch(11), random_batch(12, tfs=5)
    one, other, both = Content(), Content(), Content()
    fill(one, first, TESTBED)
    fill(other, second, TESTBED)
    fill(both, first, TESTBED)
    fill(both, second, TESTBED)
    one += other
    assert_same_content(one, both)
    assert_same_histograms(both.histograms, reference([first, second]))
    assert one.tfs_decoded == 17
    empty = Content()
    empty += both  # histograms it lacks are copied, not shared
    assert_same_content(empty, both)
    fill(both, first, TESTBED)
    assert not np.array_equal(empty.histograms["SVT/adc"].view(), both.histograms["SVT/adc"].view())


def test_corrupt_and_undecodable_tfs_are_counted_by_detector_with_the_first_reason() -> None:
    batch = random_batch(3, tfs=4)
    broken = plain(batch)
    broken.corrupt = [Corrupt("BEMC", "TF 9: first"), Corrupt(None, "TF 10: second"),
                      Corrupt("BEMC", "TF 11: third")]  # fmt: skip
    content = Content()
    fill(content, broken, TESTBED)
    fill(content, Decoded.empty(undecodable=5), TESTBED)
    fill(content, Decoded.empty(), TESTBED)
    assert content.corrupt == {"BEMC": 2, "": 1} and content.corrupt_tfs == 3
    assert content.corrupt_first_reason == "TF 9: first"
    assert content.undecodable == 5 and content.tfs_decoded == 4
    summary = content.summary()
    assert summary["corrupt_by_detector"] == {"": 1, "BEMC": 2}
    assert summary["undecodable_tfs"] == 5 and summary["corrupt_tfs"] == 3


def test_stored_and_loaded_exactly() -> None:
    content = Content()
    fill(content, random_batch(21), TESTBED)
    broken = plain(random_batch(22, tfs=3))
    broken.corrupt, broken.undecodable = [Corrupt("ZDC", "TF 1: why")], 2
    fill(content, broken, TESTBED)
    content.histograms["site/extra"] = bh.Histogram(bh.axis.Variable([0, 1.5, 10], metadata="m"))
    content.histograms["site/extra"].fill([0.5, 2, 11, -3], weight=[1, 0.25, 2, 3])
    weighted = content.histograms["site/weighted"] = bh.Histogram(
        bh.axis.Regular(4, 0, 1), storage=bh.storage.Weight())  # fmt: skip
    weighted.fill([0.1, 0.6, 0.6, 2], weight=[2, 0.5, 3, 1])
    mean = content.histograms["site/mean"] = bh.Histogram(bh.axis.Integer(0, 3),
                                                          storage=bh.storage.Mean())  # fmt: skip
    mean.fill([0, 1, 1], sample=[1.5, 2, 7])
    big = content.histograms["site/big"] = bh.Histogram(bh.axis.Integer(0, 4))
    big.view()[...] = [2**40, 3, 0, 2**31 + 0.5]  # past 32 bits, and not an integer
    loaded = Content.loads(content.dumps())
    assert_same_content(loaded, content)
    assert loaded.corrupt_first_reason == "TF 1: why" and loaded.undecodable == 2
    assert loaded.histograms["SVT/occupancy"].axes[0].metadata == "source"
    assert loaded.histograms["site/extra"].axes[0].metadata == "m"
    for name in ("site/weighted", "site/mean", "site/big"):
        assert loaded.histograms[name] == content.histograms[name]  # storage type and bins
    assert Content.loads(Content().dumps()).summary() == Content().summary()


@pytest.mark.parametrize("tasks", [[], [f"{__name__}.my_task"]])
def test_a_partial_written_from_its_counts_is_fill_then_dumps(tasks: list[str]) -> None:
    """``stored_fill`` (a sampled STF's partial: the built-in histograms never made) loads as
    the content ``fill`` makes of the same batches, stored and loaded."""
    broken = plain(random_batch(22, tfs=3))
    broken.corrupt, broken.undecodable = [Corrupt("ZDC", "TF 1: why")], 2
    batches = [random_batch(31, unmapped=[5, 6000]), broken, Decoded.empty(undecodable=4),
               random_batch(32, tfs=5)]  # fmt: skip
    with override_settings(FASTMON={"CONTENT_TASKS": tasks}):
        filled = Content()
        fill(filled, batches, TESTBED)
        partial = Content.loads(stored_fill(batches, TESTBED))
    assert_same_content(partial, Content.loads(filled.dumps()))
    assert_same_content(partial, filled)
    assert ("site/flags" in partial.histograms) == bool(tasks)
    nothing = Content.loads(stored_fill([Decoded.empty(undecodable=3)], TESTBED))
    assert nothing.histograms == {} and nothing.undecodable == 3


@pytest.mark.parametrize("top", [0, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53, -1, 0.5])
def test_bins_are_stored_exactly_whatever_their_width(top: float) -> None:
    histogram = bh.Histogram(bh.axis.Integer(0, 3, metadata="w"), bh.axis.Integer(0, 2))
    histogram.view(flow=True)[...] = np.array([[0, 1, top, 3], [4, 5, 6, 7], [8, 9, 10, 11],
                                               [12, 13, 14, 15], [1, 2, 3, top]])  # fmt: skip
    content = Content(histograms={"site/wide": histogram})
    assert Content.loads(content.dumps()).histograms["site/wide"] == histogram


def test_unmapped_sources_are_bounded_most_frequent_first() -> None:
    many = list(range(5000, 5000 + 3 * MAX_UNMAPPED_IDS))
    content, total = Content(), 0
    for seed in range(3):
        batch = random_batch(40 + seed, tfs=8, unmapped=many)
        fill(content, batch, TESTBED)
        unmapped = batch.source[~np.isin(batch.source, MAPPED)]
        total += len(unmapped)
        if seed == 0:  # one batch: its most frequent ids are those named
            ids, counts = np.unique(unmapped, return_counts=True)
            named = {k for k in content.unmapped if k != "other"}
            kept = [
                c for i, c in zip(ids.tolist(), counts.tolist(), strict=True) if str(i) in named
            ]
            dropped = [c for i, c in zip(ids.tolist(), counts.tolist(), strict=True)
                       if str(i) not in named]  # fmt: skip
            assert len(kept) == MAX_UNMAPPED_IDS and min(kept) >= max(dropped)
            assert content.unmapped["other"] == sum(dropped)
        assert len(content.unmapped) == MAX_UNMAPPED_IDS + 1
        assert sum(content.unmapped.values()) == total
    other = Content(unmapped={str(i): 1 for i in range(9000, 9000 + 2 * MAX_UNMAPPED_IDS)})
    content += other
    assert len(content.unmapped) == MAX_UNMAPPED_IDS + 1
    assert sum(content.unmapped.values()) == total + 2 * MAX_UNMAPPED_IDS


# -- a site's tasks ------------------------------------------------------------------------


def my_task(decoded: Decoded, detectors: DetectorMap) -> dict[str, bh.Histogram]:
    flags = bh.Histogram(bh.axis.Integer(0, 4, metadata="flags"))
    flags.fill(decoded.flags)
    mapped = bh.Histogram(bh.axis.Integer(-1, len(detectors)))
    mapped.fill(detectors.lookup(decoded.source)[0])
    return {"site/flags": flags, "site/detector": mapped, "unnamed": flags, "a/b/c": flags}


def failing_task(decoded: Decoded, detectors: DetectorMap) -> dict[str, bh.Histogram]:
    raise RuntimeError("the site's task broke")


def test_a_sites_task_adds_its_histograms_and_a_failing_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = random_batch(5)
    tasks = [f"{__name__}.failing_task", f"{__name__}.my_task"]
    with override_settings(FASTMON={"CONTENT_TASKS": tasks}), caplog.at_level(logging.ERROR):
        content = Content()
        fill(content, batch, TESTBED)
        fill(content, batch, TESTBED)
    flags = content.histograms["site/flags"]
    assert np.array_equal(flags.view(), 2 * np.bincount(batch.flags, minlength=4))
    assert flags.sum(flow=True) == 2 * batch.hits
    assert content.histograms["site/detector"].sum(flow=True) == 2 * batch.hits
    assert "unnamed" not in content.histograms and "a/b/c" not in content.histograms
    assert_same_histograms({k: v for k, v in content.histograms.items() if "site/" not in k},
                           reference([batch, batch]))  # fmt: skip
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)
    assert "failing_task" in failures[0].getMessage()
    plain_content = Content()
    fill(plain_content, batch, TESTBED)  # no task configured: none of theirs
    assert not any(name.startswith("site/") for name in plain_content.histograms)


# -- ROOT files ----------------------------------------------------------------------------


def test_uproot_writes_every_histogram_and_reads_back_the_same(tmp_path: Path) -> None:
    content = Content()
    fill(content, random_batch(8), TESTBED)
    path = tmp_path / "content.root"
    with uproot.recreate(path) as out:
        for name, histogram in content.histograms.items():
            out[name] = histogram
    with uproot.open(path) as back:
        for name, histogram in content.histograms.items():
            read = back[name]
            kind = name.split("/")[1]
            assert read.classname == ("TH2D" if kind == "occupancy" else "TH1D"), name
            if kind == "occupancy":  # no flow bins in fastmon's: ROOT's are zero
                assert np.array_equal(read.values(), histogram.view())
                assert read.values(flow=True).sum() == histogram.sum()
                edges = [read.axis(i).edges() for i in (0, 1)]
                assert [e.tolist() for e in edges] == [a.edges.tolist() for a in histogram.axes]
            else:
                assert np.array_equal(read.values(flow=True), histogram.view(flow=True)), name
                assert np.array_equal(read.axis().edges(), histogram.axes[0].edges), name
    assert len(content.histograms) == 4 * len(TESTBED)
