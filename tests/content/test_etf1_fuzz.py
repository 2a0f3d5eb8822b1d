"""ETF1 decoding against arbitrary and damaged bytes (hypothesis): it never raises, every TF is
decoded, corrupt or undecodable, every hit it returns is made of bytes of the buffer and never
of bytes beyond it, and it gives exactly what a plain reading of the layout gives (``struct``,
hit by hit, as docs/content.md says it), to the reasons' words."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmon.conf import TESTBED_DETECTORS
from fastmon.content import etf1
from fastmon.content.decoding import Decoded
from fastmon.content.detectors import DetectorMap

pytestmark = pytest.mark.unit

TESTBED = DetectorMap.from_setting(TESTBED_DETECTORS)
FIELDS = ("source", "channel", "bx", "adc", "flags", "tf")
CHANNELS = {s: d.channels for d in TESTBED for s in range(d.first_source, d.last_source + 1)}
# Mapped sources at the edges of their detectors, and unmapped ones (a huge one too).
SOURCES = [100, 131, 200, 215, 300, 323, 400, 447, 900, 901, 0, 99, 132, 5000, 0xFFFFFFFF]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(data: bytes | memoryview, tf_count: int,
           boundaries: Sequence[int] | None) -> Decoded:  # fmt: skip
    return etf1.Etf1Decoder().decode(data, tf_count, boundaries, TESTBED)


Why = tuple[str | None, str]  # a corrupt TF's detector and reason
Summary = tuple[list[tuple[int, ...]], list[int], list[Why], int]


def summary(decoded: Decoded) -> Summary:
    rows = list(zip(*(getattr(decoded, f).tolist() for f in FIELDS), strict=True))
    return (rows, decoded.decoded.tolist(), [(c.detector, c.reason) for c in decoded.corrupt],
            decoded.undecodable)  # fmt: skip


def check(data: bytes, tf_count: int, decoded: Decoded) -> None:
    """What holds whatever the bytes."""
    if decoded.undecodable:
        assert decoded.undecodable == tf_count
        assert decoded.hits == 0 and len(decoded.decoded) == 0 and decoded.corrupt == []
        return
    tfs = decoded.decoded.tolist()
    assert tfs == sorted(set(tfs)) and all(0 <= n < tf_count for n in tfs)
    assert len(tfs) + len(decoded.corrupt) == tf_count  # each TF decoded or counted corrupt
    assert decoded.hits <= len(data) // 8
    assert all(len(getattr(decoded, f)) == decoded.hits for f in FIELDS)
    assert set(decoded.tf.tolist()) <= set(tfs) and np.all(np.diff(decoded.tf) >= 0)
    # Every hit is 8 bytes of the buffer, and its source id 4 of them.
    records = {data[i : i + 8] for i in range(len(data) - 7)}
    words = {data[i : i + 4] for i in range(len(data) - 3)}
    for source, channel, bx, adc, flags, _ in zip(*(getattr(decoded, f).tolist()
                                                    for f in FIELDS), strict=True):  # fmt: skip
        assert struct.pack("<4H", channel, bx, adc, flags) in records
        assert struct.pack("<I", source) in words
    # A mapped source's channels are within its count.
    _, channels = TESTBED.lookup(decoded.source)
    assert np.all((channels == 0) | (decoded.channel < channels))


def plain_reading(data: bytes, tf_count: int, boundaries: Sequence[int] | None) -> Summary:
    """What the decoder must give, read the obvious way: TF by TF, block by block, hit by hit."""
    starts = [0] if boundaries is None else boundaries[:-1]
    if not any(at >= 0 and at + 4 <= len(data) and data[at : at + 4] == b"ETF1" for at in starts):
        return [], [], [], tf_count
    rows: list[tuple[int, ...]] = []
    decoded: list[int] = []
    reasons: list[Why] = []
    at: int | None = 0
    for n in range(tf_count):
        if boundaries is None and at is None:
            reasons.append((None, "after a TF whose size is broken"))
            continue
        end = None if boundaries is None else boundaries[n + 1]
        at = at if boundaries is None else boundaries[n]
        assert at is not None
        if end is not None and not 0 <= at <= end <= len(data):
            reasons.append((None, f"TF {n}: index places it at {at}-{end}, outside"))
            continue
        why, hits, at = plain_tf(data, n, at, end)
        if why is None:
            rows += hits
            decoded.append(n)
        else:
            reasons.append(why)
    return rows, decoded, reasons, 0


def plain_tf(data: bytes, n: int, at: int,
             end: int | None) -> tuple[Why | None, list[tuple[int, ...]], int | None]:  # fmt: skip
    """One TF: why it is corrupt (or None), its hits' rows, where the next TF starts."""
    if at + 32 > len(data):
        return (None, f"TF {n}: header past the end of the bytes"), [], None
    magic, version, n_sources, _, _, _, size = struct.unpack_from("<4sHHIIQQ", data, at)
    limit = len(data) if end is None else end
    if magic != b"ETF1" or version != 1:
        return (None, f"TF {n}: bad magic or version ({magic!r}, {version})"), [], None
    if not (size >= 32 and at + size <= limit and (end is None or at + size == end)):
        return (None, f"TF {n}: tf_bytes {size} does not fit {limit - at} bytes"), [], None
    place, stop, hits = at + 32, at + size, []
    for _ in range(n_sources):
        if place + 16 > stop:
            return (None, f"TF {n}: a source header runs past the TF"), [], at + size
        source, n_hits = struct.unpack_from("<II", data, place)
        if place + 16 + 8 * n_hits > stop:
            return (detector_of(source), f"TF {n}: source {source}'s {n_hits} hits overrun the "
                                         f"TF"), [], at + size  # fmt: skip
        for k in range(n_hits):
            hits.append((source, *struct.unpack_from("<4H", data, place + 16 + 8 * k), n))
        place += 16 + 8 * n_hits
    if place != stop:
        return (None, f"TF {n}: {stop - place} bytes after its last source block"), [], at + size
    for source, channel, *_ in hits:
        channels = CHANNELS.get(source, 0)
        if channels and channel >= channels:
            return (detector_of(source), f"TF {n}: channel {channel} of source {source} is past "
                                         f"its {channels} channels"), [], at + size  # fmt: skip
    return None, hits, at + size


def detector_of(source: int) -> str | None:
    return next((d.name for d in TESTBED if d.first_source <= source <= d.last_source), None)


def decoded_plainly(data: bytes | memoryview, tf_count: int,
                    boundaries: Sequence[int] | None) -> Decoded:  # fmt: skip
    """Decoded, and the same as the plain reading of the same bytes."""
    decoded = decode(data, tf_count, boundaries)
    assert summary(decoded) == plain_reading(bytes(data), tf_count, boundaries)
    return decoded


def random_stf(seed: int, tfs: int) -> tuple[bytes, list[int]]:
    """A valid STF of small TFs over mapped and unmapped sources (some channels past their
    source's count: corrupt by content, not by layout)."""
    rng = np.random.default_rng(seed)
    parts = []
    for n in range(tfs):
        blocks = []
        for _ in range(int(rng.integers(0, 5))):
            hits = np.zeros(int(rng.integers(0, 4)), dtype=etf1.HIT)
            wide = rng.random() < 0.02
            hits["channel"] = rng.integers(0, 65536 if wide else 64, len(hits))
            for field in ("bx", "adc", "flags"):
                hits[field] = rng.integers(0, 65536, len(hits))
            blocks.append((int(rng.choice(SOURCES)), hits))
        parts.append(etf1.encode_tf(n, n * etf1.BX_PER_TF, blocks))
    data = etf1.encode_stf(parts)
    return data, [0, *np.cumsum([len(p) for p in parts]).tolist()]


Mutation = tuple[str, int, bytes]  # what, where, with which bytes
MUTATION = st.tuples(st.sampled_from(["flip", "insert", "delete", "set"]),
                     st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8))  # fmt: skip


def mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    raw = bytearray(data)
    for kind, place, value in mutations:
        at = place % (len(raw) + 1)
        if kind == "flip" and at < len(raw):
            raw[at] ^= 1 << (value[0] % 8)
        elif kind == "insert":
            raw[at:at] = value
        elif kind == "delete":
            del raw[at : at + len(value)]
        else:
            raw[at : at + len(value)] = value
    return bytes(raw)


@st.composite
def boundaries_for(draw: st.DrawFn, length: int, tf_count: int) -> list[int] | None:
    if draw(st.booleans()):
        return None
    points = st.integers(-16, length + 16)
    listed = draw(st.lists(points, min_size=tf_count + 1, max_size=tf_count + 1))
    return sorted(listed) if draw(st.booleans()) else listed


@FUZZ
@given(st.data(), st.binary(max_size=1200), st.booleans(), st.integers(0, 12))
def test_arbitrary_bytes_never_raise(data: st.DataObject, raw: bytes, magic: bool,
                                     tf_count: int) -> None:  # fmt: skip
    buffer = etf1.MAGIC + raw if magic else raw
    boundaries = data.draw(boundaries_for(len(buffer), tf_count))
    check(buffer, tf_count, decoded_plainly(buffer, tf_count, boundaries))


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.lists(MUTATION, max_size=6),
       st.sampled_from(["index", "read", "none", "perturbed"]), st.integers(-2, 2),
       st.lists(st.integers(-9, 9), min_size=41, max_size=41))  # fmt: skip
def test_damaged_files_never_raise(
    seed: int, tfs: int, mutations: list[Mutation], given_as: str, extra: int, deltas: list[int]
) -> None:
    valid, offsets = random_stf(seed, tfs)
    data = mutate(valid, mutations)
    tf_count = max(0, tfs + extra)
    boundaries: list[int] | None = None
    if given_as == "index":
        boundaries = (offsets + [offsets[-1]] * 3)[: tf_count + 1]
    elif given_as == "read":
        boundaries = etf1.read_boundaries(lambda at, size: data[at : at + size], len(data))
        tf_count = len(boundaries) - 1 if boundaries else tf_count
    elif given_as == "perturbed":
        boundaries = [o + d for o, d in zip(offsets, deltas, strict=False)]
        boundaries = (boundaries + [len(data)] * 3)[: tf_count + 1]
    decoded = decoded_plainly(data, tf_count, boundaries)
    check(data, tf_count, decoded)
    if not mutations and given_as != "perturbed" and extra <= 0:  # intact, and fully given
        assert all("channel" in c.reason for c in decoded.corrupt)  # content breaks a TF only


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.lists(MUTATION, max_size=4),
       st.integers(0, 15), st.integers(1, 64), st.booleans())  # fmt: skip
def test_decoding_reads_nothing_outside_its_bytes(
    seed: int, tfs: int, mutations: list[Mutation], head: int, cut: int, indexed: bool
) -> None:
    """``data`` a slice of a larger buffer whose other bytes are poison: the poison never shows
    in a hit, and the result is the same as from the slice's bytes alone."""
    valid, offsets = random_stf(seed, tfs)
    data = mutate(valid, mutations)
    data = data[: max(4, len(data) - cut)]  # the batch may end inside a TF
    unused = sorted(set(range(256)) - set(data))
    poison = bytes([unused[0] if unused else 0xEE])
    big = poison * head + data + poison * 64
    view = memoryview(big)[head : head + len(data)]
    boundaries = offsets if indexed else None
    decoded = decoded_plainly(view, tfs, boundaries)
    assert summary(decoded) == summary(decode(bytes(data), tfs, boundaries))
    if unused:
        word = int.from_bytes(poison * 2, "little")
        for field in ("channel", "bx", "adc", "flags"):
            assert not np.any(getattr(decoded, field) == word)
        assert not np.any(decoded.source == int.from_bytes(poison * 4, "little"))


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 20))
def test_read_boundaries_never_raises_and_gives_a_consistent_index(raw: bytes, tfs: int) -> None:
    data = raw
    if tfs:  # often a trailer that points at an index
        index = sorted(int.from_bytes(raw[i : i + 2] or b"\0", "little") % (len(raw) + 1)
                       for i in range(0, 2 * tfs, 2))  # fmt: skip
        index[0] = 0
        data = raw + np.asarray([*index, len(raw)], "<u8").tobytes()
        data += etf1.TRAILER.pack(b"EIX1", len(index), len(raw))
    found = etf1.read_boundaries(lambda at, size: data[at : at + size], len(data))
    if found is not None:
        assert found[0] == 0 and found == sorted(found) and 2 <= len(found) <= tfs + 1
        assert found[-1] + 8 * len(found) + 16 == len(data)
