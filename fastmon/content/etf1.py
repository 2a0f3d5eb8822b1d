"""ETF1, the testbed's TF layout (docs/content.md): writing it (the simulator) and decoding it
(the built-in decoder). Little-endian throughout:

    STF file      := TF[0] ... TF[n-1] INDEX TRAILER
    TF            := TF_HEADER (32 bytes) SOURCE_BLOCK[0] ... SOURCE_BLOCK[n_sources-1]
    SOURCE_BLOCK  := SOURCE_HEADER (16 bytes) HIT[0] ... HIT[n_hits-1] (8 bytes each)
    INDEX         := u64 offset[n+1] (each TF's, then the index's own)
    TRAILER       := b"EIX1" u32 tf_count u64 index_offset (the file's last 16 bytes)

Decoding is paid per byte of every sampled TF, so it is built for speed (benchmarks/content.py)
and never loops per hit in Python: the TF headers are walked in Python (one per TF); the source
headers of many TFs are walked in lockstep with numpy (one step per block position, every TF
at once; a few TFs are walked in Python, cheaper then); and the hits are not copied at all. The
result is a ``BlockDecoded``: the bytes seen as 8-byte records and a row per source block (its
first record, hit count, source, TF), which ``histograms.fill`` counts from directly. The
per-hit arrays ``Decoded`` promises are made only when something reads them (a site's task).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
# Fewer TFs than this have their source headers walked in Python: a step of numpy's lockstep
# costs about 12 us whatever the number of TFs, Python about 0.3 us a block.
LOCKSTEP_MIN_TFS = 32
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
    """A batch's hits where they lie: ``records`` (R x 4 uint16: channel, bx, adc, flags), and
    per block, in order (TF, then place), none overlapping another: its first record, its hit
    count (> 0), source id and TF. Records in no block (headers) are not hits."""

    records: np.ndarray
    first: np.ndarray
    count: np.ndarray
    source: np.ndarray
    tf: np.ndarray

    def take(self, keep: np.ndarray) -> HitBlocks:
        return HitBlocks(self.records, self.first[keep], self.count[keep], self.source[keep],
                         self.tf[keep])  # fmt: skip


def _made_on_use(name: str) -> property:
    def get(self: BlockDecoded) -> np.ndarray:
        return self._array(name)

    def set(self: BlockDecoded, value: np.ndarray) -> None:
        self._array(name)
        self._per_hit[name] = value

    return property(get, set)


class BlockDecoded(Decoded):
    """``Decoded`` with the hits left in ``blocks``: the per-hit arrays (int64, as any decoder
    gives them) are made on first use, which plain decode-and-fill never needs. Its records are
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
            # Each hit's record: its block's first, then one after another.
            index = np.repeat(b.first - np.cumsum(b.count) + b.count, b.count)
            index += np.arange(total, dtype=np.int64)
            hits = b.records[index]
            self._per_hit.update({f: hits[:, i].astype(np.int64) for i, f in enumerate(_FIELDS)})
            self._per_hit["source"] = np.repeat(b.source, b.count).astype(np.int64)
            self._per_hit["tf"] = np.repeat(b.tf, b.count).astype(np.int64)
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
        walk = _Walk(view, detectors)
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
        walk.sources()
        return walk.result()


def _any_etf1(view: memoryview, boundaries: Sequence[int] | None) -> bool:
    """Whether these bytes are ETF1 at all: a TF that starts with its magic (any of them, where
    the boundaries are known, so one corrupt first TF does not make a batch another format)."""
    starts = [0] if boundaries is None else boundaries[:-1]
    return any(at >= 0 and at + 4 <= len(view) and view[at : at + 4] == MAGIC for at in starts)


_ID_AND_HITS = struct.Struct("<II")  # a source header's first two fields


class _Walk:
    """A batch's headers, the TFs' one at a time and then their source blocks'; the blocks
    found are kept as rows of arrays (start, count, source, TF), the hits left in place."""

    def __init__(self, view: memoryview, detectors: DetectorMap) -> None:
        self.view, self.detectors = view, detectors
        self.pending: list[tuple[int, int, int, int]] = []  # TF, blocks' start, end, n_sources
        self.found: list[tuple[np.ndarray, ...]] = []  # per step: start, count, source, TF
        self.walked: list[tuple[int, list[int]]] = []  # TF, its block headers (Python walks)
        self.words: dict[int, memoryview] = {}
        self.decoded: list[int] = []
        self.broken: list[tuple[int, Corrupt]] = []  # by TF: its first reason

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

    def sources(self) -> None:
        """Walk the source blocks of every TF whose header was sound."""
        if not self.pending:
            return
        n, at, end, left = np.array(self.pending, dtype=np.int64).T
        shift = at % 4
        if len(n) < LOCKSTEP_MIN_TFS or np.any(shift != shift[0]):
            for pending in self.pending:
                self._walk_one(*pending)
        else:
            self._lockstep(n, at, end, left, int(shift[0]))

    def _walk_one(self, n: int, at: int, end: int, left: int) -> None:
        """One TF's blocks in Python, reading only each header's hit count (as a native u32
        word: the source ids and counts are read again, as arrays, at the end)."""
        shift, size = at % 4, SOURCE_HEADER.size
        words, headers = self._words(shift), list[int]()
        add = headers.append
        for _ in range(left):
            if at + size > end:
                self.corrupt(n, None, f"TF {n}: a source header runs past the TF")
                return
            stop = at + size + 8 * words[(at - shift) // 4 + 1]
            if stop > end:
                self._overrun(n, *_ID_AND_HITS.unpack_from(self.view, at))
                return
            add(at)
            at = stop
        if at != end:
            self.corrupt(n, None, f"TF {n}: {end - at} bytes after its last source block")
            return
        self.walked.append((n, headers))
        self.decoded.append(n)

    def _words(self, shift: int) -> memoryview:
        """The bytes from ``shift`` on as u32 words that index to Python ints, fast."""
        if shift not in self.words:
            view, count = self.view, (len(self.view) - shift) // 4
            if sys.byteorder == "little":
                self.words[shift] = view[shift : shift + 4 * count].cast("I")
            else:
                words = np.frombuffer(view, "<u4", count=count, offset=shift)
                self.words[shift] = words.astype("=u4").data
        return self.words[shift]

    def _lockstep(self, n: np.ndarray, at: np.ndarray, end: np.ndarray, left: np.ndarray,
                  shift: int) -> None:  # fmt: skip
        """Every TF's next source header at once, as u32 words: ``shift`` is the TFs' common
        alignment, which a step (16 + 8 n_hits bytes) keeps."""
        view = self.view
        words = np.frombuffer(view, dtype="<u4", offset=shift, count=(len(view) - shift) // 4)
        while len(n):
            stopping = (left == 0) | (at + SOURCE_HEADER.size > end)
            if stopping.any():
                for tf, a, e, done in zip(n[stopping].tolist(), at[stopping].tolist(),
                                          end[stopping].tolist(), (left[stopping] == 0).tolist(),
                                          strict=True):  # fmt: skip
                    if done and a != e:
                        self.corrupt(tf, None, f"TF {tf}: {e - a} bytes after its last source "
                                               f"block")  # fmt: skip
                    elif done:
                        self.decoded.append(tf)
                    else:
                        self.corrupt(tf, None, f"TF {tf}: a source header runs past the TF")
                go = ~stopping
                n, at, end, left = n[go], at[go], end[go], left[go]
                continue
            index = (at - shift) >> 2
            source, n_hits = words[index], words[index + 1].astype(np.int64)
            stop = at + SOURCE_HEADER.size + 8 * n_hits
            over = stop > end
            if over.any():
                for tf, s, h in zip(n[over].tolist(), source[over].tolist(),
                                    n_hits[over].tolist(), strict=True):  # fmt: skip
                    self._overrun(tf, s, h)
                go = ~over
                n, at, end, left = n[go], at[go], end[go], left[go]
                source, n_hits, stop = source[go], n_hits[go], stop[go]
            self.found.append((at + SOURCE_HEADER.size, n_hits, source, n))
            at, left = stop, left - 1

    def _overrun(self, n: int, source: int, n_hits: int) -> None:
        self.corrupt(n, self._name(source), f"TF {n}: source {source}'s {n_hits} hits overrun "
                                            f"the TF")  # fmt: skip

    def _name(self, source: int) -> str | None:
        detector, _ = self.detectors.lookup(np.asarray([source], dtype=np.int64))
        return self.detectors.detectors[detector[0]].name if detector[0] >= 0 else None

    def result(self) -> BlockDecoded:
        decoded = np.sort(np.asarray(self.decoded, dtype=np.int64))
        self.broken.sort(key=lambda entry: entry[0])  # stable: a TF's first reason stays first
        blocks = self._blocks(decoded)
        # A channel at or above its source's count breaks its TF, as a bad header does.
        broken = self._channels(blocks)
        if len(broken):
            blocks = blocks.take(~np.isin(blocks.tf, broken))
            decoded = decoded[~np.isin(decoded, broken)]
        return BlockDecoded(blocks, decoded, [reason for _, reason in self.broken])

    def _blocks(self, decoded: np.ndarray) -> HitBlocks:
        """The blocks with hits of the sound TFs, in order, and the records they lie in: the
        bytes themselves when the blocks are in order and aligned alike (a sound batch), else
        (only a hostile index makes this) copies of their hits."""
        parts = [tuple(np.zeros(0, dtype=np.int64) for _ in range(4)), *self.found]
        if self.walked:
            headers = np.array([at for _, ats in self.walked for at in ats], dtype=np.int64)
            tfs = np.repeat([n for n, _ in self.walked], [len(ats) for _, ats in self.walked])
            shifts = headers % 4
            source, count = np.zeros((2, len(headers)), dtype=np.int64)
            for shift in range(shifts.min(initial=0), shifts.max(initial=0) + 1):
                chosen = shifts == shift
                index = (headers[chosen] - shift) // 4
                words = np.frombuffer(self._words(shift), dtype=np.uint32)
                source[chosen], count[chosen] = words[index], words[index + 1]
            parts.append((headers + SOURCE_HEADER.size, count, source, tfs))
        start, count, source, tf = (np.concatenate([part[i] for part in parts]) for i in range(4))
        sound = np.zeros(max(tf.max(initial=-1), decoded.max(initial=-1)) + 1, dtype=bool)
        sound[decoded] = True
        keep = np.flatnonzero((count > 0) & sound[tf])
        # The lockstep's steps interleave the TFs: their blocks back in TF order.
        keep = keep[np.argsort(tf[keep], kind="stable")]
        start, count, source, tf = (column[keep].astype(np.int64)
                                    for column in (start, count, source, tf))  # fmt: skip
        view, ends = self.view, start + 8 * count
        if not len(start):
            return HitBlocks(np.zeros((0, 4), np.uint16), start, count, source, tf)
        if np.all(start % 8 == start[0] % 8) and np.all(start[1:] >= ends[:-1]):
            low, high = int(start[0]), int(ends[-1])
            records = np.frombuffer(view, "<u2", count=(high - low) // 2, offset=low)
            return HitBlocks(records.reshape(-1, 4), (start - low) // 8, count, source, tf)
        return HitBlocks(_copied(view, start, count), np.cumsum(count) - count, count, source, tf)

    def _channels(self, blocks: HitBlocks) -> np.ndarray:
        """The TFs with a channel past its source's count, each counted corrupt with the first
        such hit."""
        if not len(blocks.first):
            return np.zeros(0, dtype=np.int64)
        channel, ends = blocks.records[:, 0], blocks.first + blocks.count
        bounds = np.stack([blocks.first, ends], axis=1).ravel()
        if bounds[-1] == len(channel):  # reduceat's indices stay inside the array
            bounds = bounds[:-1]
        top = np.maximum.reduceat(channel, bounds)[::2]  # each block's highest channel
        _, channels = self.detectors.lookup(blocks.source)
        bad = np.flatnonzero((channels > 0) & (top >= channels))
        broken, first = np.unique(blocks.tf[bad], return_index=True)
        for n, i in zip(broken.tolist(), bad[first].tolist(), strict=True):
            hits = channel[blocks.first[i] : ends[i]]
            value = hits[np.argmax(hits >= channels[i])]
            source = int(blocks.source[i])
            self.corrupt(n, self._name(source), f"TF {n}: channel {value} of source {source} "
                                                f"is past its {channels[i]} channels")  # fmt: skip
        return broken


def _copied(view: memoryview, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The hit records of blocks that overlap or lie at different alignments, copied out in
    order from a record view of the bytes at each alignment."""
    total = int(count.sum())
    offsets = np.repeat(start - 8 * (np.cumsum(count) - count), count)
    offsets += 8 * np.arange(total, dtype=np.int64)
    out = np.empty((total, 4), dtype=np.uint16)
    for shift in np.unique(start % 8).tolist():
        records = np.frombuffer(view, "<u2", count=(len(view) - shift) // 8 * 4, offset=shift)
        chosen = offsets % 8 == shift
        out[chosen] = records.reshape(-1, 4)[(offsets[chosen] - shift) // 8]
    return out
