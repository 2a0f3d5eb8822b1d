"""The detector map: parsed from FASTMON["DETECTORS"], refused whole when it does not make sense,
and looked up a whole array of source ids at a time."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from django.test import override_settings

from fastmon.conf import TESTBED_DETECTORS
from fastmon.content.detectors import DetectorMap, detector_map

pytestmark = pytest.mark.unit


def entry(name: str, first: int, last: int, channels: int) -> dict[str, Any]:
    return {"name": name, "sources": [first, last], "channels": channels}


def test_the_testbed_map() -> None:
    detectors = DetectorMap.from_setting(TESTBED_DETECTORS)
    assert [d.name for d in detectors] == ["SVT", "MPGD", "BEMC", "dRICH", "ZDC"]
    assert sum(d.n_sources for d in detectors) == 122 and len(detectors) == 5
    index, channels = detectors.lookup(np.array([100, 131, 200, 215, 300, 323, 400, 447, 900, 901]))
    assert index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert channels.tolist() == [4096, 4096, 2048, 2048, 512, 512, 1024, 1024, 64, 64]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ([entry("A", 0, 10, 8), entry("B", 10, 20, 8)], "share source ids"),
        ([entry("A", 5, 10, 8), entry("B", 0, 30, 8)], "share source ids"),
        ([entry("A", 0, 1, 8), entry("A", 2, 3, 8)], "named twice"),
        ([entry("A", 10, 9, 8)], "0 <= first <= last"),
        ([entry("A", -1, 9, 8)], "0 <= first <= last"),
        ([entry("A", 0, 1 << 20, 8)], "0 <= first <= last"),
        ([entry("A", 0, 1, 0)], "channels must be 1..65536"),
        ([entry("A", 0, 1, 65537)], "channels must be 1..65536"),
        ([entry("A", 0, 1, -4)], "channels must be 1..65536"),
        ([entry("", 0, 1, 8)], "non-empty, without '/'"),
        ([entry("A/B", 0, 1, 8)], "non-empty, without '/'"),
        ({"name": "A", "sources": [0, 1], "channels": 8}, "must be a list"),
        ("SVT", "must be a list"),
        (None, "must be a list"),
        ([{"name": "A", "sources": [0, 1]}], "DETECTORS[0]"),
        ([entry("A", 0, 1, 8), {"name": "B", "sources": [5], "channels": 8}], "DETECTORS[1]"),
        ([{"name": "A", "sources": ["x", 1], "channels": 8}], "DETECTORS[0]"),
        ([{"name": "A", "sources": 7, "channels": 8}], "DETECTORS[0]"),
        (["A"], "DETECTORS[0]"),
    ],
)
def test_a_map_that_does_not_make_sense_is_refused(setting: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        DetectorMap.from_setting(setting)


def test_unmapped_and_huge_source_ids_look_up_to_nothing() -> None:
    detectors = DetectorMap.from_setting(TESTBED_DETECTORS)
    ids = np.array([0, 99, 132, 199, 216, 324, 448, 899, 902, 5000, 2**20, 2**32 - 1, 2**40])
    index, channels = detectors.lookup(ids)
    assert index.tolist() == [-1] * len(ids) and channels.tolist() == [0] * len(ids)
    index, channels = detectors.lookup(np.zeros(0, dtype=np.int64))
    assert len(index) == len(channels) == 0


def test_the_sites_map_follows_its_setting() -> None:
    assert [d.name for d in detector_map()] == [d["name"] for d in TESTBED_DETECTORS]
    with override_settings(FASTMON={"DETECTORS": [entry("X", 7, 8, 16)]}):
        (only,) = detector_map()
        assert (only.name, only.first_source, only.last_source, only.channels) == ("X", 7, 8, 16)
        assert detector_map() is detector_map()  # parsed once
    assert [d.name for d in detector_map()] == [d["name"] for d in TESTBED_DETECTORS]


def test_an_empty_map_and_negative_ids_leave_every_source_unmapped() -> None:
    empty = DetectorMap.from_setting([])
    detector, channels = empty.lookup(np.array([0, 300, 2**40]))
    assert detector.tolist() == [-1, -1, -1] and channels.tolist() == [0, 0, 0]
    testbed = DetectorMap.from_setting(TESTBED_DETECTORS)
    detector, channels = testbed.lookup(np.array([-1, -200, 300]))
    assert detector.tolist()[:2] == [-1, -1] and channels.tolist()[:2] == [0, 0]
    assert detector[2] >= 0
