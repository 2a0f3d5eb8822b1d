"""STF files as the DAQ writes them, for fastmon to sample: ETF1 with realistic content
(``fastmon.simulator.content``), or pseudo-random bytes (content fastmon cannot decode, which
is not an error), both deterministic (the same seed gives the same bytes and checksums); or
sparse (zeros, no disk used) for large sizes."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from fastmon.content.detectors import DetectorMap
from fastmon.simulator.content import Etf1Stf
from fastmon.simulator.detector_faults import NEEDS_ETF1, DetectorFault
from fastmon.simulator.shapes import DEFAULT_TF_COUNT

Content = Literal["etf1", "random"]
CONTENTS: tuple[Content, ...] = ("etf1", "random")
_PATTERN_BYTES = 1024 * 1024


@dataclass(frozen=True)
class WrittenStf:
    """What the announcement says of a written file: its real size, its Adler-32 as the DAQ
    writes it (``ad:<decimal>``), and, for ETF1, each TF's byte offset and then the index's."""

    size: int
    checksum: str
    tf_offsets: tuple[int, ...] | None = None


@cache
def _pattern(seed: int) -> bytes:
    """Pseudo-random bytes, twice over, so any rotation of them is one slice."""
    block = random.Random(seed).randbytes(_PATTERN_BYTES)
    return block + block


def zeros_adler32(size: int) -> int:
    """Adler-32 of ``size`` zero bytes (a sparse file), without reading them: A stays 1 and B
    adds 1 per byte."""
    return ((size % 65521) << 16) | 1


def write_stf(
    path: Path,
    size: int,
    *,
    content: Content = "etf1",
    sparse: bool = False,
    seed: int = 0,
    tf_count: int = DEFAULT_TF_COUNT,
    sequence: int = 0,
    detectors: DetectorMap | None = None,
    faults: Sequence[DetectorFault] = (),
) -> WrittenStf:
    """Write an STF file of about ``size`` bytes: sparse (exactly ``size`` zeros) whatever the
    content, else ETF1 of ``tf_count`` TFs over ``detectors`` (the testbed's map by default),
    or ``size`` pseudo-random bytes; the same seed and file name give the same bytes. ETF1
    alone takes detector ``faults``."""
    if faults and (sparse or content != "etf1"):
        raise ValueError(NEEDS_ETF1)
    if sparse or content == "random":
        return WrittenStf(size, write_stf_file(path, size, sparse, seed))
    if content != "etf1":
        raise ValueError(f"content must be one of {', '.join(CONTENTS)}, not {content!r}")
    stf = Etf1Stf(size, tf_count, seed=seed, name=path.name, sequence=sequence,
                  detectors=detectors, faults=faults)  # fmt: skip
    adler, written = 1, 0
    with path.open("wb") as stream:
        for chunk in stf.chunks():
            stream.write(chunk)
            adler = zlib.adler32(chunk, adler)
            written += len(chunk)
    return WrittenStf(written, f"ad:{adler}", tuple(stf.tf_offsets))


def write_stf_file(path: Path, size: int, sparse: bool = False, seed: int = 0) -> str:
    """Write an STF file of exactly ``size`` bytes that is not ETF1; return its checksum as the
    DAQ writes it (``ad:``).

    Sparse: all zeros, no blocks allocated. Otherwise pseudo-random bytes from ``seed``, rotated
    by the file name, so files differ from each other and the same seed gives the same bytes.
    """
    with path.open("wb") as stream:
        if sparse:
            stream.truncate(size)
            return f"ad:{zeros_adler32(size)}"
        offset = zlib.crc32(path.name.encode()) % _PATTERN_BYTES
        chunk = memoryview(_pattern(seed))[offset : offset + _PATTERN_BYTES]
        adler, remaining = 1, size
        while remaining > 0:
            piece = chunk[: min(_PATTERN_BYTES, remaining)]
            stream.write(piece)
            adler = zlib.adler32(piece, adler)
            remaining -= len(piece)
    return f"ad:{adler}"
