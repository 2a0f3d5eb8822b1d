"""ETF1 written and decoded: the layout's worked example byte for byte, the index read back, and
every kind of corrupt TF counted with its reason while the others decode, with the TFs' offsets
from the index and without them (the chain of tf_bytes)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import pytest

from fastmon.conf import TESTBED_DETECTORS
from fastmon.content import etf1
from fastmon.content.decoding import Decoded, ReadAt
from fastmon.content.detectors import DetectorMap
from fastmon.content.etf1 import HIT, Etf1Decoder, encode_stf, encode_tf, read_boundaries

pytestmark = pytest.mark.unit

TESTBED = DetectorMap.from_setting(TESTBED_DETECTORS)
FIELDS = ("source", "channel", "bx", "adc", "flags", "tf")


def hits(*rows: tuple[int, int, int, int]) -> np.ndarray:
    return np.array(list(rows), dtype=HIT)


def reader(data: bytes) -> ReadAt:
    return lambda at, size: data[at : at + size]


def decode(data: bytes | memoryview, tf_count: int, boundaries: Sequence[int] | None,
           detectors: DetectorMap = TESTBED) -> Decoded:  # fmt: skip
    return Etf1Decoder().decode(data, tf_count, boundaries, detectors)


def as_rows(decoded: Decoded) -> list[tuple[int, ...]]:
    return list(zip(*(getattr(decoded, f).tolist() for f in FIELDS), strict=True))


def reasons(decoded: Decoded) -> list[tuple[str | None, str]]:
    return [(c.detector, c.reason) for c in decoded.corrupt]


# -- the worked example ----------------------------------------------------------------------

EXAMPLE_HITS = hits((5, 10, 100, 0), (7, 20, 3000, 0))


def example() -> bytes:
    return encode_stf(encode_tf(n, n * etf1.BX_PER_TF, [(300, EXAMPLE_HITS)]) for n in range(2))


def test_the_worked_example_byte_for_byte() -> None:
    data = example()
    assert len(data) == 168
    for n, start in enumerate((0, 64)):
        assert struct.unpack_from("<4sHHIIQQ", data, start) == (b"ETF1", 1, 1, n, 0, n << 16, 64)
        assert struct.unpack_from("<IIQ", data, start + 32) == (300, 2, 0)
        assert struct.unpack_from("<4H", data, start + 48) == (5, 10, 100, 0)
        assert struct.unpack_from("<4H", data, start + 56) == (7, 20, 3000, 0)
    assert struct.unpack_from("<3Q", data, 128) == (0, 64, 128)
    assert struct.unpack_from("<4sIQ", data, 152) == (b"EIX1", 2, 128)
    tf = [struct.pack("<4sHHIIQQ", b"ETF1", 1, 1, n, 0, n << 16, 64)
          + struct.pack("<IIQ", 300, 2, 0) + struct.pack("<8H", 5, 10, 100, 0, 7, 20, 3000, 0)
          for n in range(2)]  # fmt: skip
    assert data == b"".join(tf) + struct.pack("<3Q4sIQ", 0, 64, 128, b"EIX1", 2, 128)


def test_the_worked_example_decodes_to_its_four_hits() -> None:
    data = example()
    assert read_boundaries(reader(data), len(data)) == [0, 64, 128]
    assert Etf1Decoder().boundaries(reader(data), len(data)) == [0, 64, 128]
    for boundaries in ([0, 64, 128], None):
        decoded = decode(data, 2, boundaries)
        assert as_rows(decoded) == [(300, 5, 10, 100, 0, 0), (300, 7, 20, 3000, 0, 0),
                                    (300, 5, 10, 100, 0, 1), (300, 7, 20, 3000, 0, 1)]  # fmt: skip
        assert decoded.hits == 4 and decoded.decoded.tolist() == [0, 1]
        assert decoded.corrupt == [] and decoded.undecodable == 0
        assert all(getattr(decoded, f).dtype == np.int64 for f in FIELDS)


# -- read_boundaries -------------------------------------------------------------------------


def with_trailer(data: bytes, magic: bytes = b"EIX1", tf_count: int | None = None,
                 index_offset: int | None = None) -> bytes:  # fmt: skip
    _, count, offset = etf1.TRAILER.unpack_from(data, len(data) - 16)
    count = count if tf_count is None else tf_count
    offset = offset if index_offset is None else index_offset
    return data[:-16] + etf1.TRAILER.pack(magic, count, offset)


def with_index(data: bytes, offsets: Sequence[int]) -> bytes:
    return data[:128] + np.asarray(offsets, dtype="<u8").tobytes() + data[152:]


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(with_trailer(example(), magic=b"EIX2"), id="trailer magic"),
        pytest.param(with_trailer(example(), tf_count=0), id="no TFs"),
        pytest.param(with_trailer(example(), tf_count=etf1.MAX_TF_COUNT + 1), id="tf_count huge"),
        pytest.param(with_trailer(example(), tf_count=3), id="tf_count past the index"),
        pytest.param(with_trailer(example(), index_offset=120), id="index_offset moved"),
        pytest.param(with_trailer(example(), index_offset=1 << 62), id="index_offset huge"),
        pytest.param(with_index(example(), [8, 64, 128]), id="first offset not 0"),
        pytest.param(with_index(example(), [0, 64, 120]), id="last offset not the index"),
        pytest.param(with_index(example(), [0, 130, 128]), id="offsets decrease"),
        pytest.param(example()[:-1], id="truncated"),
        pytest.param(example()[-15:], id="shorter than a trailer"),
        pytest.param(b"", id="empty"),
    ],
)
def test_read_boundaries_refuses_what_does_not_fit(broken: bytes) -> None:
    assert read_boundaries(reader(broken), len(broken)) is None


def test_read_boundaries_refuses_an_index_it_cannot_read_whole() -> None:
    data = example()
    assert read_boundaries(lambda at, size: data[at : at + size][:8], len(data)) is None
    assert read_boundaries(lambda at, size: b"", len(data)) is None


# -- corrupt TFs -----------------------------------------------------------------------------

# Four TFs of three blocks: SVT's source 100, BEMC's 300 (512 channels), and 5000, unmapped.
BLOCKS = [(100, hits((1, 2, 3, 0), (4095, 5, 6, 1))), (300, hits((511, 7, 8, 0))),
          (5000, hits((60000, 9, 10, 0), (2, 11, 12, 0)))]  # fmt: skip
TFS = 4


def good_tfs() -> list[bytes]:
    return [encode_tf(n, n * etf1.BX_PER_TF, BLOCKS) for n in range(TFS)]


def build(tfs: list[bytes]) -> tuple[bytes, list[int]]:
    data = encode_stf(tfs)
    offsets = [0, *np.cumsum([len(tf) for tf in tfs]).tolist()]
    return data, offsets


def expected_rows(tfs: Sequence[int]) -> list[tuple[int, ...]]:
    return [(source, *hit, n) for n in tfs for source, block in BLOCKS for hit in block.tolist()]


def patched(tf: bytes, at: int, fmt: str, *values: int | bytes) -> bytes:
    raw = bytearray(tf)
    struct.pack_into(fmt, raw, at, *values)
    return bytes(raw)


def tf_bytes_of(tf: bytes) -> int:
    return etf1.TF_HEADER.unpack_from(tf)[-1]


# Where TF 2 is broken, and how: (its bytes, the detector blamed, the reason's start, whether
# the chain of tf_bytes still reaches TF 3 without the index).
SVT_HEADER, BEMC_HEADER = 32, 32 + 16 + 16  # offsets in a TF of the blocks' headers
BEMC_HIT = BEMC_HEADER + 16


def corruptions() -> list[tuple[str, bytes, str | None, str, bool]]:
    tf = good_tfs()[2]
    size = tf_bytes_of(tf)
    return [
        ("bad magic", patched(tf, 0, "<4s", b"ETF2"), None, "TF 2: bad magic or version", False),
        ("bad version", patched(tf, 4, "<H", 2), None, "TF 2: bad magic or version", False),
        ("tf_bytes too small", patched(tf, 24, "<Q", 16), None,
         "TF 2: tf_bytes 16 does not fit", False),
        ("n_hits overrun", patched(tf, BEMC_HEADER + 4, "<I", 1000), "BEMC",
         "TF 2: source 300's 1000 hits overrun the TF", True),
        ("n_hits overrun u32", patched(tf, SVT_HEADER + 4, "<I", 0xFFFFFFFF), "SVT",
         f"TF 2: source 100's {0xFFFFFFFF} hits overrun the TF", True),
        ("source header past the end", patched(tf, 6, "<H", 4), None,
         "TF 2: a source header runs past the TF", True),
        ("channel out of range", patched(tf, BEMC_HIT, "<H", 600), "BEMC",
         "TF 2: channel 600 of source 300 is past its 512 channels", True),
        ("channel 512 of 512", patched(tf, BEMC_HIT, "<H", 512), "BEMC",
         "TF 2: channel 512 of source 300 is past its 512 channels", True),
        ("bytes after the last block", patched(tf + bytes(8), 24, "<Q", size + 8), None,
         "TF 2: 8 bytes after its last source block", True),
        ("fewer sources than blocks", patched(tf, 6, "<H", 2), None,
         "TF 2: 32 bytes after its last source block", True),
    ]  # fmt: skip


@pytest.mark.parametrize("name", [c[0] for c in corruptions()])
def test_a_corrupt_tf_is_counted_with_its_reason_and_the_others_decode(name: str) -> None:
    _, broken, detector, reason, chained = next(c for c in corruptions() if c[0] == name)
    tfs = good_tfs()
    tfs[2] = broken
    data, offsets = build(tfs)
    assert read_boundaries(reader(data), len(data)) == offsets
    by_index = decode(data, TFS, offsets)
    assert by_index.decoded.tolist() == [0, 1, 3] and by_index.undecodable == 0
    assert as_rows(by_index) == expected_rows([0, 1, 3])
    ((blamed, why),) = reasons(by_index)
    assert blamed == detector and why.startswith(reason)
    by_chain = decode(data, TFS, None)
    if chained:  # the sizes still lead from TF to TF: only TF 2 is lost
        assert reasons(by_chain) == reasons(by_index)
        assert as_rows(by_chain) == expected_rows([0, 1, 3])
    else:  # TF 2's size is not to be believed: TF 3 cannot be found either
        assert by_chain.decoded.tolist() == [0, 1] and len(by_chain.corrupt) == 2
        assert reasons(by_chain)[0][1].startswith(reason)
        assert reasons(by_chain)[1] == (None, "after a TF whose size is broken")
        assert as_rows(by_chain) == expected_rows([0, 1])


def test_tf_bytes_too_large_breaks_its_tf_and_the_chain() -> None:
    tfs = good_tfs()
    size = tf_bytes_of(tfs[2])
    tfs[2] = patched(tfs[2], 24, "<Q", size + 8)  # 8 bytes of TF 3 would be its own
    data, offsets = build(tfs)
    by_index = decode(data, TFS, offsets)
    assert reasons(by_index) == [(None, f"TF 2: tf_bytes {size + 8} does not fit {size} bytes")]
    assert by_index.decoded.tolist() == [0, 1, 3]
    by_chain = decode(data, TFS, None)
    assert by_chain.decoded.tolist() == [0, 1]
    assert [r for _, r in reasons(by_chain)] == [
        "TF 2: 8 bytes after its last source block",
        "TF 3: bad magic or version (b'\\x03\\x00\\x00\\x00', 0)",
    ]
    last = good_tfs()
    last[3] = patched(last[3], 24, "<Q", 1 << 40)  # past the end of the bytes
    data, offsets = build(last)
    for boundaries in (offsets, None):
        broken = decode(data[: offsets[-1]], TFS, boundaries)
        assert broken.decoded.tolist() == [0, 1, 2]
        assert reasons(broken)[0][1].startswith(f"TF 3: tf_bytes {1 << 40} does not fit")


def test_an_index_outside_the_bytes_and_a_batch_cut_short() -> None:
    data, offsets = build(good_tfs())
    outside = decode(data, TFS, [0, offsets[1], len(data) + 8, offsets[3], offsets[4]])
    assert outside.decoded.tolist() == [0, 3]
    assert [r for _, r in reasons(outside)] == [
        f"TF 1: index places it at {offsets[1]}-{len(data) + 8}, outside",
        f"TF 2: index places it at {len(data) + 8}-{offsets[3]}, outside",
    ]
    cut = decode(data[: offsets[3] - 4], TFS, None)  # TF 2 lacks its last bytes, TF 3 is gone
    assert cut.decoded.tolist() == [0, 1]
    assert [r for _, r in reasons(cut)] == [
        f"TF 2: tf_bytes {offsets[3] - offsets[2]} does not fit {offsets[3] - 4 - offsets[2]} "
        "bytes", "after a TF whose size is broken"]  # fmt: skip
    header_cut = decode(data[: offsets[3] + 10], TFS, None)
    assert header_cut.decoded.tolist() == [0, 1, 2]
    assert reasons(header_cut) == [(None, "TF 3: header past the end of the bytes")]


def test_bytes_not_in_etf1_are_undecodable_not_corrupt() -> None:
    rng = np.random.default_rng(3)
    for data in (rng.bytes(4096), b"", b"ETF", bytes(100), b"EIX1" + example()[4:]):
        decoded = decode(data, 7, None)
        assert decoded.undecodable == 7 and decoded.hits == 0 and decoded.corrupt == []
        assert len(decoded.decoded) == 0
        assert decode(data, 7, [0] * 8).undecodable == 7


def test_unmapped_sources_decode_and_no_channel_limit_applies() -> None:
    data, offsets = build(good_tfs())
    zdc_only = DetectorMap.from_setting([{"name": "ZDC", "sources": [900, 901], "channels": 64}])
    decoded = decode(data, TFS, offsets, zdc_only)  # every source unmapped
    assert decoded.corrupt == [] and as_rows(decoded) == expected_rows(range(TFS))


def test_overlapping_and_misaligned_tfs_from_a_hostile_index() -> None:
    """TFs placed by the index over the same bytes, or at another alignment (odd too), decode
    as well, their hits read in place."""
    data, offsets = build(good_tfs())
    again = decode(data, 3, [0, offsets[1], 0, offsets[1]])  # TF 1 backwards, TF 2 = TF 0
    assert again.decoded.tolist() == [0, 2]
    assert as_rows(again) == expected_rows([0, 2])
    tfs = good_tfs()
    for pad in (3, 2, 1):  # TF 1 (the padding) is broken, TF 2 is at +pad
        shifted = tfs[0] + bytes(pad) + tfs[1]
        decoded = decode(shifted, 3, [0, len(tfs[0]), len(tfs[0]) + pad, len(shifted)])
        assert decoded.decoded.tolist() == [0, 2]
        assert [(s, *h) for s, *h, _ in as_rows(decoded)] == [r[:-1] for r in expected_rows([0, 1])]


def test_a_slice_at_any_alignment_in_memory() -> None:
    data, offsets = build(good_tfs())
    for pad in range(8):
        buffer = bytes(pad) + data
        decoded = decode(memoryview(buffer)[pad:], TFS, offsets)
        assert decoded.corrupt == [] and as_rows(decoded) == expected_rows(range(TFS))


def test_the_per_hit_arrays_are_made_on_use_and_settable() -> None:
    data, offsets = build(good_tfs())
    decoded = decode(data, TFS, offsets)
    assert decoded.hits == 5 * TFS
    decoded.adc = np.zeros(decoded.hits, dtype=np.int64)
    assert decoded.adc.sum() == 0 and decoded.channel[1] == 4095
    assert len(decoded.source) == len(decoded.tf) == decoded.hits
