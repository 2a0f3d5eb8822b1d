"""Checksums of sampled bytes, in one home: Adler-32 as the DAQ writes it, computed over byte
spans as they are read (``Checksums``), and what a sample's Adler-32 should be as far as the
announcement says: when an ``stf_ready`` carries ``tf_checksums`` (one ``ad:<decimal>`` per
TF), a range's checksum follows from its TFs' by zlib's ``adler32_combine`` (Adler-32 of
concatenated bytes, from the parts' checksums and lengths), with no bytes read. The quality
check ``TfChecksum`` compares."""

from __future__ import annotations

from collections.abc import Sequence

from zlib_ng.zlib_ng import adler32

from fastmon.sampling.roots import RemoteError
from fastmon.sampling.spans import byte_spans

# Adler-32 by zlib-ng: the same values as zlib's, five times faster (SIMD); a sample's bytes
# are all checksummed, so this is most of what a read costs beyond the read itself.
__all__ = ["ANNOUNCED", "REREAD", "Checksums", "adler32", "adler32_combine",
           "announced_range_checksums", "parse_adler32"]  # fmt: skip

Spans = Sequence[tuple[int, int]]  # (start, end): half-open byte spans, sorted, apart

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
        known = [part for part in parts if part is not None]
        if len(known) != len(parts):
            found.append(None)
            continue
        tfs = [(n, n) for n in range(first, last + 1)]
        lengths = [end - start for start, end in byte_spans(tf_count, tfs, boundaries, file_size)]
        combined = 1  # Adler-32 of no bytes
        for part, length in zip(known, lengths, strict=True):
            combined = adler32_combine(combined, part, length)
        found.append(f"ad:{combined}")
    return found


class Checksums:
    """Adler-32 of each span, fed bytes at their offsets in increasing order per span; with
    ``keep``, each span's bytes kept too (``kept``), for content monitoring."""

    def __init__(self, spans: Spans, keep: bool = False) -> None:
        self.spans = list(spans)
        self.kept: list[bytearray] | None = [bytearray() for _ in self.spans] if keep else None
        self.adler = [1] * len(self.spans)
        self.done = [start for start, _ in self.spans]  # the next offset each span expects
        self.first = 0  # spans before it are complete

    def feed(self, offset: int, data: bytes | memoryview) -> None:
        end = offset + len(data)
        for index in range(self.first, len(self.spans)):
            start, stop = self.spans[index]
            if start >= end:
                break  # spans are sorted: none further can overlap
            low, high = max(start, offset), min(stop, end)
            if low >= high:
                continue
            if low != self.done[index]:
                raise RemoteError(f"bytes {low}-{high} came out of order", transient=False,
                                  kind="OutOfOrder")  # fmt: skip
            piece = memoryview(data)[low - offset : high - offset]
            self.adler[index] = adler32(piece, self.adler[index])
            if self.kept is not None:
                self.kept[index] += piece
            self.done[index] = high
        while self.first < len(self.spans) and self.done[self.first] >= self.spans[self.first][1]:
            self.first += 1  # complete: never looked at again

    def missing(self) -> list[tuple[int, int]]:
        return [(done, stop) for done, (_, stop) in zip(self.done, self.spans, strict=True)
                if done < stop]  # fmt: skip

    def results(self) -> list[int]:
        if gaps := self.missing():
            raise RemoteError(f"bytes {gaps[0][0]}-{gaps[0][1]} never came", transient=True,
                              kind="ShortRead")  # fmt: skip
        return self.adler
