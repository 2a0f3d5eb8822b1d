"""The content checks on synthetic content: each fires and clears, says null with too few
entries, and names the detector (and source and channel) in its reason."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from fastmon.content.detectors import DetectorMap
from fastmon.content.histograms import Content, book
from fastmon.quality.contentchecks import (
    CorruptTFs,
    DeadChannels,
    HotChannels,
    MissingSources,
    ReferenceComparison,
)
from fastmon.quality.framework import ContentSeen, RunFacts
from fastmon.quality.verdicts import Quality

DETECTORS = DetectorMap.from_setting([
    {"name": "BEMC", "sources": [300, 303], "channels": 64},
    {"name": "ZDC", "sources": [900, 901], "channels": 16},
])  # fmt: skip
RUN = RunFacts(1, "run", "", None, None)


def filled(per_channel: float = 50.0, tfs: int = 1000, **occupancy: np.ndarray) -> Content:
    """Content with every channel of every detector at ``per_channel`` hits (or a detector's
    own occupancy), and ADC values drawn uniformly."""
    rng = np.random.default_rng(1)
    content = Content(tfs_decoded=tfs)
    for detector in DETECTORS:
        content.histograms.update(book(detector))
        shape = (detector.n_sources, detector.channels)
        hits = occupancy.get(detector.name, np.full(shape, per_channel))
        content.histograms[f"{detector.name}/occupancy"].view()[...] = hits
        content.histograms[f"{detector.name}/adc"].fill(rng.uniform(0, 4096, int(hits.sum())))
    return content


def bemc(value: float = 50.0, **bins: float) -> np.ndarray:
    """BEMC's occupancy, every bin ``value`` but those named ``s<source>c<channel>``."""
    counts = np.full((4, 64), value)
    for name, hits in bins.items():
        source, channel = name[1:].split("c")
        counts[int(source) - 300, int(channel)] = hits
    return counts


def seen(window: Content, whole: Content | None = None, delta: Content | None = None,
         references: Mapping[str, Content] | None = None) -> ContentSeen:  # fmt: skip
    return ContentSeen(whole or window, window, delta or window, references or {}, DETECTORS)


def test_dead_channels_fire_with_the_detector_source_and_channel_and_clear() -> None:
    check, memory = DeadChannels(), {}
    verdict = check.on_content(memory, RUN, seen(filled(BEMC=bemc(s301c5=0, s301c6=0))))
    assert verdict is not None and verdict.quality == Quality.BAD
    assert "BEMC: 2 dead channels" in verdict.reason
    assert "source 301 channel 5, source 301 channel 6" in verdict.reason
    assert memory["detectors"]["ZDC"]["quality"] == "good"
    assert memory["detectors"]["BEMC"]["quality"] == "bad"
    verdict = check.on_content(memory, RUN, seen(filled()))
    assert verdict is not None and verdict.quality == Quality.GOOD


def test_a_whole_dead_source_is_named_once() -> None:
    counts = bemc()
    counts[2] = 0
    verdict = DeadChannels().on_content({}, RUN, seen(filled(BEMC=counts)))
    assert verdict is not None and "source 302 (all 64 channels)" in verdict.reason


def test_dead_channels_need_enough_hits_expected() -> None:
    verdict = DeadChannels().on_content({}, RUN, seen(filled(per_channel=3)))
    assert verdict is not None and verdict.quality == Quality.NULL
    assert "too few" in verdict.reason


def test_the_reference_decides_which_channels_are_expected() -> None:
    masked = filled(BEMC=bemc(s300c7=0))  # the reference never had channel 7
    verdict = DeadChannels().on_content({}, RUN, seen(masked, references={"BEMC": masked}))
    assert verdict is not None and verdict.quality == Quality.GOOD
    verdict = DeadChannels(expect_from="median").on_content({}, RUN, seen(masked))
    assert verdict is not None and "source 300 channel 7" in verdict.reason


def test_a_short_reference_does_not_make_every_channel_it_missed_hot_or_dead() -> None:
    rng = np.random.default_rng(5)
    short = filled(BEMC=rng.poisson(0.5, (4, 64)).astype(float))  # most channels: 0 or 1 hit
    clean = filled()
    for check in (HotChannels(), DeadChannels()):
        verdict = check.on_content({}, RUN, seen(clean, references={"BEMC": short}))
        assert verdict is not None and verdict.quality == Quality.GOOD, verdict.reason
    verdict = HotChannels().on_content(
        {}, RUN, seen(filled(BEMC=bemc(s301c2=900)), references={"BEMC": short}))  # fmt: skip
    assert verdict is not None and "source 301 channel 2" in verdict.reason


def test_hot_channels_worst_first_and_clear() -> None:
    check, memory = HotChannels(), {}
    hot = filled(BEMC=bemc(s300c1=400, s302c3=900))
    verdict = check.on_content(memory, RUN, seen(hot))
    assert verdict is not None and verdict.quality == Quality.BAD
    assert "BEMC: 2 hot channels" in verdict.reason
    assert verdict.reason.index("source 302 channel 3") < verdict.reason.index("source 300")
    assert memory["detectors"]["ZDC"]["quality"] == "good"
    verdict = check.on_content(memory, RUN, seen(filled()))
    assert verdict is not None and verdict.quality == Quality.GOOD


def test_a_sparse_detector_is_judged_by_its_mean() -> None:
    counts = np.random.default_rng(3).poisson(0.3, (4, 64)).astype(float)  # the median: 0
    counts[3, 9] = 600
    counts[1, 1] = 4  # a few hits where there are usually none: not hot
    check = HotChannels(min_entries=100)
    verdict = check.on_content({}, RUN, seen(filled(BEMC=counts)))
    assert verdict is not None and verdict.quality == Quality.BAD
    assert "BEMC: 1 hot channels" in verdict.reason and "source 303 channel 9" in verdict.reason


def test_hot_channels_need_entries() -> None:
    verdict = HotChannels().on_content({}, RUN, seen(filled(per_channel=1)))
    assert verdict is not None and verdict.quality == Quality.NULL


def test_missing_sources_after_window_cycles_and_back() -> None:
    check, memory = MissingSources(window=3), {}
    silent = bemc()
    silent[3] = 0
    verdicts = [check.on_content(memory, RUN, seen(filled(BEMC=silent))) for _ in range(3)]
    assert [v.quality for v in verdicts if v] == [Quality.NULL, Quality.NULL, Quality.BAD]
    assert "BEMC: 1 of 4 sources sent nothing for 3 cycles: 303" in verdicts[-1].reason
    few = filled(tfs=2)  # a cycle of too few TFs leaves the verdict as it was
    verdict = check.on_content(memory, RUN, seen(few, delta=few))
    assert verdict is not None and verdict.quality == Quality.BAD
    verdict = check.on_content(memory, RUN, seen(filled()))
    assert verdict is not None and verdict.quality == Quality.GOOD


def test_corrupt_tfs_over_the_fraction_and_clear() -> None:
    check, memory = CorruptTFs(), {}
    broken = filled()
    broken.corrupt, broken.corrupt_first_reason = {"BEMC": 30}, "hits overrun the TF"
    verdict = check.on_content(memory, RUN, seen(broken))
    assert verdict is not None and verdict.quality == Quality.BAD
    assert verdict.reason.startswith("BEMC: 30 of 1030 TFs corrupt (2.9%)")
    assert memory["detectors"]["ZDC"]["quality"] == "good"
    verdict = check.on_content(memory, RUN, seen(filled()))
    assert verdict is not None and verdict.quality == Quality.GOOD
    verdict = check.on_content(memory, RUN, seen(filled(tfs=10)))
    assert verdict is not None and verdict.quality == Quality.NULL


@pytest.mark.parametrize("method", ["chi2", "kolmogorov"])
def test_reference_comparison_by_histogram(method: str) -> None:
    check, memory = ReferenceComparison(method=method), {}
    reference = filled()
    verdict = check.on_content(memory, RUN, seen(filled(), references={"BEMC": reference}))
    assert verdict is not None and verdict.quality == Quality.GOOD
    assert memory["detectors"]["ZDC"] == {"quality": "null", "reason": "ZDC: no reference"}
    shifted = filled()
    shifted.histograms["BEMC/adc"].reset()
    shifted.histograms["BEMC/adc"].fill(np.random.default_rng(2).uniform(0, 2048, 12800))
    verdict = check.on_content(memory, RUN, seen(shifted, references={"BEMC": reference}))
    assert verdict is not None and verdict.quality == Quality.BAD
    assert verdict.reason.startswith("BEMC/adc: ")
    by_histogram = memory["detectors"]["BEMC"]["histograms"]
    assert by_histogram["BEMC/adc"]["quality"] == "bad"
    assert by_histogram["BEMC/occupancy"]["quality"] == "good"


def test_reference_comparison_needs_entries_and_a_reference() -> None:
    few = filled(per_channel=0.1)
    verdict = ReferenceComparison().on_content({}, RUN, seen(few, references={"BEMC": few}))
    assert verdict is not None and verdict.quality == Quality.NULL
    verdict = ReferenceComparison().on_content({}, RUN, seen(filled()))
    assert verdict == verdict and verdict is not None and verdict.quality == Quality.NULL
    assert "BEMC: no reference" in verdict.reason


def test_one_detector_only_and_parameters_checked() -> None:
    memory: dict = {}
    DeadChannels(detector="ZDC").on_content(memory, RUN, seen(filled(BEMC=bemc(s300c0=0))))
    assert list(memory["detectors"]) == ["ZDC"]
    with pytest.raises(ValueError, match="over must be"):
        HotChannels(over="forever")
    with pytest.raises(ValueError, match="no parameter"):
        HotChannels(sigma=3)


def test_a_profile_every_source_shares_is_expected_not_hot() -> None:
    profile = np.where(np.arange(64) % 16 == 0, 500.0, 50.0)  # bands ten times the rest
    banded = filled(BEMC=np.tile(profile, (4, 1)))
    verdict = HotChannels().on_content({}, RUN, seen(banded))
    assert verdict is not None and verdict.quality == Quality.GOOD
    assert "channel's median over sources" in verdict.reason
    verdict = HotChannels(expect_from="median").on_content({}, RUN, seen(banded))
    assert verdict is not None and verdict.quality == Quality.BAD
    with pytest.raises(ValueError, match="expect_from must be"):
        DeadChannels(expect_from="neighbours")
