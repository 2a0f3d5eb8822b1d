"""STF files as the DAQ writes them: ETF1 by default, with the size, checksum and TF offsets
its announcement needs; pseudo-random bytes or sparse zeros of exactly the size asked for;
content reproducible from the seed, and the checksum of a sparse file known without reading
it."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from fastmon.content import etf1
from fastmon.simulator.files import write_stf, write_stf_file, zeros_adler32

NAME = "swf.1.000001.stf"


def test_file_content_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    checksums = {}
    for seed, copy in [(1, 1), (1, 2), (2, 1)]:
        directory = tmp_path / f"{seed}-{copy}"
        directory.mkdir()
        checksums[seed, copy] = write_stf_file(directory / NAME, 100_000, seed=seed)
    assert checksums[1, 1] == checksums[1, 2] != checksums[2, 1]


@pytest.mark.parametrize("size", [0, 1, 65520, 65521, 65522, 5_000_000])
def test_checksum_of_a_sparse_file_without_reading_it(size: int) -> None:
    assert zeros_adler32(size) == zlib.adler32(bytes(size))


def test_an_etf1_file_says_its_real_size_checksum_and_tf_offsets(tmp_path: Path) -> None:
    path = tmp_path / NAME
    written = write_stf(path, 3_000_001, seed=4, tf_count=64, sequence=1)
    data = path.read_bytes()
    assert written.size == len(data) and abs(len(data) - 3_000_001) < 300_000
    assert written.checksum == f"ad:{zlib.adler32(data)}"
    boundaries = etf1.read_boundaries(lambda at, n: data[at : at + n], len(data))
    assert written.tf_offsets is not None and list(written.tf_offsets) == boundaries
    assert len(written.tf_offsets) == 65
    again = tmp_path / "again"
    again.mkdir()
    assert write_stf(again / NAME, 3_000_001, seed=4, tf_count=64, sequence=1) == written
    assert (again / NAME).read_bytes() == data


def test_pseudo_random_and_sparse_files_are_the_size_asked_for_without_offsets(
    tmp_path: Path,
) -> None:
    random = write_stf(tmp_path / NAME, 100_001, content="random", seed=3)
    assert (random.size, random.tf_offsets) == (100_001, None)
    assert random.checksum == f"ad:{zlib.adler32((tmp_path / NAME).read_bytes())}"
    (tmp_path / "copy").mkdir()
    assert random.checksum == write_stf_file(tmp_path / "copy" / NAME, 100_001, seed=3)
    sparse = write_stf(tmp_path / "sparse.stf", 5_000_000, sparse=True)  # ETF1 asked: zeros
    assert sparse == type(sparse)(5_000_000, f"ad:{zeros_adler32(5_000_000)}", None)
    with pytest.raises(ValueError, match="content must be"):
        write_stf(tmp_path / NAME, 10, content="root")  # type: ignore[arg-type]
