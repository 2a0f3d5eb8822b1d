"""ETF1, the testbed's TF layout (docs/content.md): writing it (the simulator) and decoding it
(the built-in decoder). Little-endian throughout:

    STF file      := TF[0] ... TF[n-1] INDEX TRAILER
    TF            := TF_HEADER (32 bytes) SOURCE_BLOCK[0] ... SOURCE_BLOCK[n_sources-1]
    SOURCE_BLOCK  := SOURCE_HEADER (16 bytes) HIT[0] ... HIT[n_hits-1] (8 bytes each)
    INDEX         := u64 offset[n+1] (each TF's, then the index's own)
    TRAILER       := b"EIX1" u32 tf_count u64 index_offset (the file's last 16 bytes)

Decoding is paid per byte of every sampled TF, so it is built for speed (benchmarks/content.py)
and never loops per block or hit in Python: the TF headers are walked in Python (one per TF,
their reasons need words), the source headers and the channels by a compiled loop
(``compiled.walk_blocks``), and the hits are not copied at all. The result is a
``BlockDecoded``: the bytes and a row per source block (its first hit's offset, hit count,
source, TF), which ``histograms.fill`` counts from directly. The per-hit arrays ``Decoded``
promises are made only when something reads them (a site's task).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fastmon.content import compiled
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
_FIELDS = ("channel", "bx", "adc", "flags")
_UNKNOWN = -1  # where the next TF starts when a TF's size is broken


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


@dataclass(frozen=True)
class HitBlocks:
    """A batch's hits where they lie: ``data``, its bytes (uint8), and per block with hits, in
    order (TF, then place): the byte offset of its first hit, its hit count (> 0), its source
    id and its TF. Hits are 8 bytes each (``HIT``), in place."""

    data: np.ndarray
    start: np.ndarray
    count: np.ndarray
    source: np.ndarray
    tf: np.ndarray


def _made_on_use(name: str) -> property:
    def get(self: BlockDecoded) -> np.ndarray:
        return self._array(name)

    def set(self: BlockDecoded, value: np.ndarray) -> None:
        self._array(name)
        self._per_hit[name] = value

    return property(get, set)


class BlockDecoded(Decoded):
    """``Decoded`` with the hits left in ``blocks``: the per-hit arrays (int64, as any decoder
    gives them) are made on first use, which plain decode-and-fill never needs. Its hits are
    the decoded bytes themselves: they must not change while it is in use."""

    def __init__(self, blocks: HitBlocks, decoded: np.ndarray, corrupt: list[Corrupt]) -> None:
        self.blocks, self.decoded, self.corrupt, self.undecodable = blocks, decoded, corrupt, 0
        self._per_hit: dict[str, np.ndarray] = {}

    @property
    def hits(self) -> int:
        return int(self.blocks.count.sum())

    def _array(self, name: str) -> np.ndarray:
        if not self._per_hit:
            b, total = self.blocks, self.hits
            # Each hit's first byte: its block's first, then 8 bytes after another.
            at = np.repeat(b.start - HIT.itemsize * (np.cumsum(b.count) - b.count), b.count)
            at += HIT.itemsize * np.arange(total, dtype=np.int64)
            hits = b.data[at[:, None] + np.arange(HIT.itemsize)].view(HIT)[:, 0]
            self._per_hit.update({f: hits[f].astype(np.int64) for f in _FIELDS})
            self._per_hit["source"] = np.repeat(b.source, b.count)
            self._per_hit["tf"] = np.repeat(b.tf, b.count)
        return self._per_hit[name]

    # The fields of Decoded, made when first read (and settable, as a dataclass's are).
    source, channel, bx, adc, flags, tf = (_made_on_use(f) for f in ("source", *_FIELDS, "tf"))


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
        if not _any_etf1(view, boundaries):
            return Decoded.empty(undecodable=tf_count)  # another format: nothing to say
        walk = _Walk(view)
        start = 0
        for n in range(tf_count):
            if boundaries is not None:
                start, end = boundaries[n], boundaries[n + 1]
                if not 0 <= start <= end <= len(view):
                    walk.corrupt(n, None, f"TF {n}: index places it at {start}-{end}, outside")
                    continue
                walk.tf(n, start, end)
            else:
                start = walk.tf(n, start, None)
                if start == _UNKNOWN:  # the chain of tf_bytes is broken: the rest is unreachable
                    for rest in range(n + 1, tf_count):
                        walk.corrupt(rest, None, "after a TF whose size is broken")
                    break
        return walk.blocks(detectors)


def _any_etf1(view: memoryview, boundaries: Sequence[int] | None) -> bool:
    """Whether these bytes are ETF1 at all: a TF that starts with its magic (any of them, where
    the boundaries are known, so one corrupt first TF does not make a batch another format)."""
    starts = [0] if boundaries is None else boundaries[:-1]
    return any(at >= 0 and at + 4 <= len(view) and view[at : at + 4] == MAGIC for at in starts)


class _Walk:
    """A batch's headers: the TFs' in Python, one at a time (their reasons need words), then
    their source blocks' compiled (``compiled.walk_blocks``), every block of every TF."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.pending: list[tuple[int, int, int, int]] = []  # TF, blocks' start, end, n_sources
        self.broken: list[tuple[int, Corrupt]] = []  # by TF: its reason

    def corrupt(self, n: int, detector: str | None, reason: str) -> None:
        self.broken.append((n, Corrupt(detector, reason)))

    def tf(self, n: int, start: int, end: int | None) -> int:
        """Check TF ``n``'s header at ``start``; with no ``end`` (no boundaries), its size
        decides. Returns where the next TF starts (``_UNKNOWN``: nowhere)."""
        view = self.view
        if start + TF_HEADER.size > len(view):
            self.corrupt(n, None, f"TF {n}: header past the end of the bytes")
            return _UNKNOWN
        magic, version, n_sources, _, _, _, size = TF_HEADER.unpack_from(view, start)
        limit = len(view) if end is None else end
        if magic != MAGIC or version != VERSION:
            self.corrupt(n, None, f"TF {n}: bad magic or version ({bytes(magic)!r}, {version})")
            return _UNKNOWN
        fits = TF_HEADER.size <= size and start + size <= limit
        if not fits or (end is not None and start + size != end):
            self.corrupt(n, None, f"TF {n}: tf_bytes {size} does not fit {limit - start} bytes")
            return _UNKNOWN
        self.pending.append((n, start + TF_HEADER.size, start + size, n_sources))
        return start + size

    def blocks(self, detectors: DetectorMap) -> BlockDecoded:
        """Walk the source blocks of every TF whose header was sound, and say why each TF that
        was not is corrupt."""
        data = np.frombuffer(self.view, dtype=np.uint8)
        data.flags.writeable = False  # read-only whatever the caller's: one compiled variant
        n, at, end, left = np.array(self.pending, dtype=np.int64).reshape(-1, 4).T.copy()
        start, count, source, tf, verdicts = compiled.walk_blocks(
            data, compiled.word_views(data), at, end, left, detectors.channels_of
        )
        for tf_n, (verdict, *numbers) in zip(n.tolist(), verdicts.tolist(), strict=True):
            if verdict != compiled.SOUND:
                self.corrupt(tf_n, *_reason(tf_n, verdict, numbers, detectors))
        self.broken.sort(key=lambda entry: entry[0])
        decoded = n[verdicts[:, 0] == compiled.SOUND]
        return BlockDecoded(HitBlocks(data, start, count, source, n[tf]), decoded,
                            [reason for _, reason in self.broken])  # fmt: skip


def _reason(n: int, verdict: int, numbers: list[int],
            detectors: DetectorMap) -> tuple[str | None, str]:  # fmt: skip
    """A broken TF's detector (None: no block's) and why, from ``walk_blocks``' verdict."""
    if verdict == compiled.HEADER_PAST:
        return None, f"TF {n}: a source header runs past the TF"
    if verdict == compiled.TRAILING:
        return None, f"TF {n}: {numbers[0]} bytes after its last source block"
    if verdict == compiled.OVERRUN:
        source, n_hits, _ = numbers
        return _name(source, detectors), f"TF {n}: source {source}'s {n_hits} hits overrun the TF"
    channel, source, channels = numbers
    return _name(source, detectors), (f"TF {n}: channel {channel} of source {source} is past its "
                                      f"{channels} channels")  # fmt: skip


def _name(source: int, detectors: DetectorMap) -> str | None:
    detector, _ = detectors.lookup(np.asarray([source], dtype=np.int64))
    return detectors.detectors[detector[0]].name if detector[0] >= 0 else None
