"""STF files as the DAQ writes them, for fastmon to sample: deterministic content (the same seed
gives the same bytes and checksums), or sparse (zeros, no disk used) for large sizes."""

from __future__ import annotations

import random
import zlib
from functools import cache
from pathlib import Path

_PATTERN_BYTES = 1024 * 1024


@cache
def _pattern(seed: int) -> bytes:
    """Pseudo-random bytes, twice over, so any rotation of them is one slice."""
    block = random.Random(seed).randbytes(_PATTERN_BYTES)
    return block + block


def zeros_adler32(size: int) -> int:
    """Adler-32 of ``size`` zero bytes (a sparse file), without reading them: A stays 1 and B
    adds 1 per byte."""
    return ((size % 65521) << 16) | 1


def write_stf_file(path: Path, size: int, sparse: bool = False, seed: int = 0) -> str:
    """Write an STF file of ``size`` bytes; return its checksum as the DAQ writes it (``ad:``).

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
