"""Partial reads of STF files: only the sampled byte ranges, only under the data roots."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from fastmon.sampling.policy import TESTBED, StfFacts, select_ranges
from fastmon.sampling.reading import Unreachable, local_path, read_tf_ranges
from fastmon.sampling.spans import tf_offset

GIB = 1024**3


def test_a_2_gb_stf_sampled_at_15_percent_reads_about_15_percent(tmp_path: Path) -> None:
    stf = tmp_path / "swf.101993.000001.stf"
    with stf.open("wb") as f:  # sparse: 2 GiB on paper, nothing on disk
        f.truncate(2 * GIB)
    ranges = select_ranges(TESTBED, StfFacts(stf.name, 101993, 1, 1000))
    measured, read = read_tf_ranges(stf, 1000, [(r.tf_first, r.tf_last) for r in ranges])

    sampled_tfs = sum(r.tf_count for r in ranges)
    assert read == sum(m.size_bytes for m in measured)
    assert read == pytest.approx(2 * GIB * sampled_tfs / 1000, rel=0.01)
    assert 0.10 < read / (2 * GIB) < 0.20  # about 15 %, never the whole file


def test_sizes_and_adler32_are_those_of_the_exact_byte_ranges(tmp_path: Path) -> None:
    data = os.urandom(1_000_003)
    stf = tmp_path / "small.stf"
    stf.write_bytes(data)
    measured, _ = read_tf_ranges(stf, 10, [(0, 0), (3, 5), (9, 9)])
    for (first, last), m in zip([(0, 0), (3, 5), (9, 9)], measured, strict=True):
        start, end = tf_offset(first, 10, len(data)), tf_offset(last + 1, 10, len(data))
        assert m.size_bytes == end - start
        assert m.checksum == f"ad:{zlib.adler32(data[start:end])}"
    assert sum(tf_offset(i + 1, 10, len(data)) - tf_offset(i, 10, len(data))
               for i in range(10)) == len(data)  # fmt: skip


def test_announced_boundaries_place_the_tfs(tmp_path: Path) -> None:
    stf = tmp_path / "b.stf"
    stf.write_bytes(b"a" * 10 + b"b" * 30 + b"c" * 60)
    measured, read = read_tf_ranges(stf, 3, [(1, 1)], boundaries=[0, 10, 40, 100])
    assert measured[0].size_bytes == 30 and read == 30
    assert measured[0].checksum == f"ad:{zlib.adler32(b'b' * 30)}"


def test_a_truncated_file_is_an_error_not_a_short_sample(tmp_path: Path) -> None:
    stf = tmp_path / "t.stf"
    stf.write_bytes(b"x" * 100)
    with pytest.raises(OSError, match="ended"):
        read_tf_ranges(stf, 3, [(0, 2)], boundaries=[0, 50, 100, 200])


def test_files_are_read_only_under_the_data_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "daq", tmp_path / "elsewhere"
    root.mkdir(), outside.mkdir()
    inside = root / "a.stf"
    inside.write_bytes(b"x")
    (outside / "b.stf").write_bytes(b"x")
    (root / "link.stf").symlink_to(outside / "b.stf")
    roots = [str(root)]

    assert local_path(f"file://{inside}", "a.stf", roots) == inside
    assert local_path(str(inside), "a.stf", roots) == inside
    refused = {
        f"file://{outside}/b.stf": "outside the data roots",
        f"file://{root}/../elsewhere/b.stf": "outside the data roots",
        f"file://{root}/link.stf": "outside the data roots",
        f"file://{root}/missing.stf": "does not exist",
        "root://eic.example//data/a.stf": "root:// files are not read locally",
        "": "no file URL",
    }
    for url, words in refused.items():
        with pytest.raises(Unreachable, match=words):
            local_path(url, "x.stf", roots)
    with pytest.raises(Unreachable) as caught:
        local_path(f"file://{root}/link.stf", "link.stf", roots)
    assert str(outside) not in str(caught.value), "the reason must not reveal a link's target"
    with pytest.raises(Unreachable, match="no data roots"):
        local_path(f"file://{inside}", "a.stf", [])
