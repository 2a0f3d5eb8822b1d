"""STF files as the DAQ writes them: content reproducible from the seed, and the checksum of a
sparse file known without reading it."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from fastmon.simulator.files import write_stf_file, zeros_adler32


def test_file_content_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    checksums = {}
    for seed, copy in [(1, 1), (1, 2), (2, 1)]:
        directory = tmp_path / f"{seed}-{copy}"
        directory.mkdir()
        checksums[seed, copy] = write_stf_file(directory / "swf.1.000001.stf", 100_000, seed=seed)
    assert checksums[1, 1] == checksums[1, 2] != checksums[2, 1]


@pytest.mark.parametrize("size", [0, 1, 65520, 65521, 65522, 5_000_000])
def test_checksum_of_a_sparse_file_without_reading_it(size: int) -> None:
    assert zeros_adler32(size) == zlib.adler32(bytes(size))
