"""What a sample's Adler-32 should be, as far as the announcement says: when an ``stf_ready``
carries ``tf_checksums`` (one ``ad:<decimal>`` per TF), a range's checksum follows from its
TFs' by zlib's ``adler32_combine`` (Adler-32 of concatenated bytes, from the parts' checksums
and lengths), with no bytes read. The quality check ``TfChecksum`` compares."""

from __future__ import annotations

from collections.abc import Sequence

from fastmon.sampling.reading import byte_spans

_BASE = 65521  # the largest prime below 2**16: Adler-32's modulus

# Where a sample's metadata keeps the checksums its own is compared with.
ANNOUNCED, REREAD = "checksum_announced", "checksum_reread"


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of A + B from Adler-32 of A, of B, and B's length (zlib's formula)."""
    rem = second_length % _BASE
    sum1 = first & 0xFFFF
    sum2 = (rem * sum1) % _BASE
    sum1 += (second & 0xFFFF) + _BASE - 1
    sum2 += ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + _BASE - rem
    return (sum1 % _BASE) | ((sum2 % _BASE) << 16)


def parse_adler32(text: object) -> int | None:
    """``ad:<decimal>`` (the DAQ's) or 8-digit hex (Rucio's); None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        value = int(text[3:]) if text.startswith("ad:") else int(text, 16) if len(text) == 8 else -1
    except ValueError:
        return None
    return value if 0 <= value < 2**32 else None


def announced_range_checksums(
    tf_checksums: object,
    tf_count: int,
    ranges: Sequence[tuple[int, int]],
    boundaries: Sequence[int] | None,
    file_size: int,
) -> list[str | None]:
    """Each range's Adler-32 by its TFs' announced ones (None where they are missing or
    unusable): TF lengths from ``boundaries``, else equal shares of the file."""
    if not isinstance(tf_checksums, list) or len(tf_checksums) != tf_count:
        return [None] * len(ranges)
    parsed = [parse_adler32(text) for text in tf_checksums]
    found: list[str | None] = []
    for first, last in ranges:
        parts = parsed[first : last + 1]
        if any(part is None for part in parts):
            found.append(None)
            continue
        tfs = [(n, n) for n in range(first, last + 1)]
        lengths = [end - start for start, end in byte_spans(tf_count, tfs, boundaries, file_size)]
        combined = 1  # Adler-32 of no bytes
        for part, length in zip(parts, lengths, strict=True):
            combined = adler32_combine(combined, part, length)
        found.append(f"ad:{combined}")
    return found
