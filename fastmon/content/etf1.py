"""ETF1, the testbed's TF layout (docs/content.md): writing it (the simulator) and decoding it
(the built-in decoder). Little-endian throughout:

    STF file      := TF[0] ... TF[n-1] INDEX TRAILER
    TF            := TF_HEADER (32 bytes) SOURCE_BLOCK[0] ... SOURCE_BLOCK[n_sources-1]
    SOURCE_BLOCK  := SOURCE_HEADER (16 bytes) HIT[0] ... HIT[n_hits-1] (8 bytes each)
    INDEX         := u64 offset[n+1] (each TF's, then the index's own)
    TRAILER       := b"EIX1" u32 tf_count u64 index_offset (the file's last 16 bytes)

Decoding walks the small headers in Python (a few hundred per TF) and takes the hits, the bulk
of the bytes, as numpy arrays: no per-hit Python.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np

from fastmon.content.decoding import Corrupt, Decoded, ReadAt
from fastmon.content.detectors import DetectorMap

MAGIC, TRAILER_MAGIC, VERSION = b"ETF1", b"EIX1", 1
TF_HEADER = struct.Struct(
    "<4sHHIIQQ"
)  # magic, version, n_sources, tf_index, flags, first_bx, tf_bytes
SOURCE_HEADER = struct.Struct("<IIQ")  # source_id, n_hits, reserved
TRAILER = struct.Struct("<4sIQ")  # magic, tf_count, index_offset
HIT = np.dtype([("channel", "<u2"), ("bx", "<u2"), ("adc", "<u2"), ("flags", "<u2")])
BX_PER_TF = 1 << 16
# An index longer than this is not believed (a hostile trailer must not make us read gigabytes).
MAX_TF_COUNT = 1 << 20


# -- writing -------------------------------------------------------------------------------


def encode_tf(
    tf_index: int, first_bx: int, blocks: Sequence[tuple[int, np.ndarray]], flags: int = 0
) -> bytes:
    """One TF: ``blocks`` are ``(source_id, hits)`` with ``hits`` an array of ``HIT``."""
    body = b"".join(
        SOURCE_HEADER.pack(source, len(hits), 0) + np.asarray(hits, dtype=HIT).tobytes()
        for source, hits in blocks
    )
    size = TF_HEADER.size + len(body)
    return TF_HEADER.pack(MAGIC, VERSION, len(blocks), tf_index, flags, first_bx, size) + body


def index_and_trailer(offsets: Sequence[int]) -> bytes:
    """What follows the TFs: ``offsets`` are each TF's and, last, where the index starts."""
    tf_count, index_offset = len(offsets) - 1, offsets[-1]
    return (np.asarray(offsets, dtype="<u8").tobytes()
            + TRAILER.pack(TRAILER_MAGIC, tf_count, index_offset))  # fmt: skip


def encode_stf(tfs: Iterable[bytes]) -> bytes:
    """A whole STF file of these TFs (for small files; the simulator streams large ones)."""
    parts, offsets, at = [], [], 0
    for tf in tfs:
        offsets.append(at)
        parts.append(tf)
        at += len(tf)
    return b"".join(parts) + index_and_trailer([*offsets, at])


# -- reading -------------------------------------------------------------------------------


def read_boundaries(read: ReadAt, file_size: int) -> list[int] | None:
    """Each TF's offset and the index's, from the trailer and the index (two small reads);
    None unless both are whole and consistent."""
    if file_size < TRAILER.size:
        return None
    magic, tf_count, index_offset = TRAILER.unpack(read(file_size - TRAILER.size, TRAILER.size)
                                                   .ljust(TRAILER.size, b"\0"))  # fmt: skip
    length = 8 * (tf_count + 1)
    if (magic != TRAILER_MAGIC or not 0 < tf_count <= MAX_TF_COUNT
            or index_offset + length + TRAILER.size != file_size):  # fmt: skip
        return None
    raw = read(index_offset, length)
    if len(raw) != length:
        return None
    offsets = np.frombuffer(raw, dtype="<u8").astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != index_offset or np.any(np.diff(offsets) < 0):
        return None
    return offsets.tolist()


class Etf1Decoder:
    name = "etf1"

    def boundaries(self, read: ReadAt, file_size: int) -> list[int] | None:
        return read_boundaries(read, file_size)

    def decode(
        self,
        data: bytes | memoryview,
        tf_count: int,
        boundaries: Sequence[int] | None,
        detectors: DetectorMap,
    ) -> Decoded:
        view = memoryview(data).cast("B")
        if len(view) < 4 or bytes(view[:4]) != MAGIC:
            return Decoded.empty(undecodable=tf_count)  # another format: nothing to say
        walk = _Walk(view, detectors)
        start = 0
        for n in range(tf_count):
            if boundaries is not None:
                start, end = boundaries[n], boundaries[n + 1]
                if not 0 <= start <= end <= len(view):
                    walk.corrupt(None, f"TF {n}: index places it at {start}-{end}, outside")
                    continue
                walk.tf(n, start, end)
            else:
                start = walk.tf(n, start, None)
                if start < 0:  # the chain of tf_bytes is broken: the rest is unreachable
                    walk.corrupt_rest(tf_count - n - 1)
                    break
        return walk.result()


class _Walk:
    """The headers of a batch walked one TF at a time; the hits' places collected to be taken
    as arrays at the end."""

    def __init__(self, view: memoryview, detectors: DetectorMap) -> None:
        self.view, self.detectors = view, detectors
        self.starts: list[int] = []  # byte offset of each block's first hit
        self.counts: list[int] = []
        self.sources: list[int] = []
        self.tfs: list[int] = []  # the block's TF
        self.decoded: list[int] = []
        self.broken: list[Corrupt] = []

    def corrupt(self, detector: str | None, reason: str) -> None:
        self.broken.append(Corrupt(detector, reason))

    def corrupt_rest(self, count: int) -> None:
        self.broken.extend(Corrupt(None, "after a TF whose size is broken") for _ in range(count))

    def tf(self, n: int, start: int, end: int | None) -> int:
        """Walk TF ``n`` at ``start``; with no ``end`` (no boundaries), its header's size
        decides. Returns where the next TF starts (-1: unknown)."""
        view = self.view
        if start + TF_HEADER.size > len(view):
            self.corrupt(None, f"TF {n}: header past the end of the bytes")
            return -1
        magic, version, n_sources, _, _, _, size = TF_HEADER.unpack_from(view, start)
        limit = len(view) if end is None else end
        if magic != MAGIC or version != VERSION:
            self.corrupt(None, f"TF {n}: bad magic or version ({bytes(magic)!r}, {version})")
            return -1
        fits = TF_HEADER.size <= size and start + size <= limit
        if not fits or (end is not None and start + size != end):
            self.corrupt(None, f"TF {n}: tf_bytes {size} does not fit {limit - start} bytes")
            return -1
        end = start + size
        at, blocks = start + TF_HEADER.size, []
        for _ in range(n_sources):
            if at + SOURCE_HEADER.size > end:
                self.corrupt(None, f"TF {n}: a source header runs past the TF")
                return end
            source, n_hits, _ = SOURCE_HEADER.unpack_from(view, at)
            at += SOURCE_HEADER.size
            if at + 8 * n_hits > end:
                self.corrupt(self._name(source), f"TF {n}: source {source}'s {n_hits} hits "
                                                 f"overrun the TF")  # fmt: skip
                return end
            blocks.append((at, n_hits, source))
            at += 8 * n_hits
        if at != end:
            self.corrupt(None, f"TF {n}: {end - at} bytes after its last source block")
            return end
        for block_start, n_hits, source in blocks:
            if n_hits:
                self.starts.append(block_start)
                self.counts.append(n_hits)
                self.sources.append(source)
                self.tfs.append(n)
        self.decoded.append(n)
        return end

    def _name(self, source: int) -> str | None:
        detector, _ = self.detectors.lookup(np.asarray([source], dtype=np.int64))
        return self.detectors.detectors[detector[0]].name if detector[0] >= 0 else None

    def result(self) -> Decoded:
        counts = np.asarray(self.counts, dtype=np.int64)
        starts = np.asarray(self.starts, dtype=np.int64)
        hits = _hits(self.view, starts, counts)
        source = np.repeat(np.asarray(self.sources, dtype=np.int64), counts)
        tf = np.repeat(np.asarray(self.tfs, dtype=np.int64), counts)
        channel = hits["channel"].astype(np.int64)
        decoded = np.asarray(self.decoded, dtype=np.int64)
        # A channel at or above its source's count breaks its TF, as a bad header does.
        _, channels = self.detectors.lookup(source)
        bad = (channels > 0) & (channel >= channels)
        if bad.any():
            broken_tfs, first = np.unique(tf[bad], return_index=True)
            where = np.flatnonzero(bad)[first]
            for n, i in zip(broken_tfs.tolist(), where.tolist(), strict=True):
                self.corrupt(self._name(int(source[i])), f"TF {n}: channel {channel[i]} of "
                             f"source {source[i]} is past its {channels[i]} channels")  # fmt: skip
            keep = ~np.isin(tf, broken_tfs)
            hits, source, tf, channel = hits[keep], source[keep], tf[keep], channel[keep]
            decoded = decoded[~np.isin(decoded, broken_tfs)]
        return Decoded(
            source=source, channel=channel, bx=hits["bx"].astype(np.int64),
            adc=hits["adc"].astype(np.int64), flags=hits["flags"].astype(np.int64), tf=tf,
            decoded=decoded, corrupt=self.broken,
        )  # fmt: skip


def _hits(view: memoryview, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The hit records of every block, in order, as one ``HIT`` array: gathered from a record
    view of the bytes at each block's alignment (every block shares one in a sound file)."""
    total = int(counts.sum())
    out = np.empty(total, dtype=HIT)
    if not total:
        return out
    # Each hit's byte offset, without a Python loop: a block's first, then 8 bytes apart.
    firsts = np.repeat(starts - 8 * (np.cumsum(counts) - counts), counts)
    offsets = firsts + 8 * np.arange(total, dtype=np.int64)
    shifts = offsets % 8
    kinds = np.unique(shifts).tolist()
    for shift in kinds:
        records = np.frombuffer(view, dtype=HIT, offset=shift, count=(len(view) - shift) // 8)
        if len(kinds) == 1:
            out[:] = records[(offsets - shift) // 8]
        else:
            chosen = shifts == shift
            out[chosen] = records[(offsets[chosen] - shift) // 8]
    return out
