"""The loops that touch every byte of a sampled TF, compiled by numba: decode+fill is paid per
byte, and numpy needs a pass over the hits per operation (several per histogram) where one
compiled pass does it all (benchmarks/content.py). Compiled on first use, cached on disk.

They know bytes and numbers per block, not what the layout or the histograms mean: the ETF1
decoder (``etf1``) walks source blocks with ``walk_blocks``, the filler (``histograms``) counts
their hits with ``count_hits``. Hits are read in place as little-endian 16-bit words, from
``words`` (``word_views``: the bytes as words from byte 0, and from byte 1), so a block at any
byte offset needs no copy.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# walk_blocks' verdict on a TF, and what its other three numbers then say.
SOUND = 0
HEADER_PAST = 1  # a source header runs past the TF
OVERRUN = 2  # a block's hits overrun the TF: source, hits
TRAILING = 3  # bytes after the last block: how many
CHANNEL = 4  # a hit's channel is past its source's count: channel, source, channels
_SOURCE_HEADER = 16  # bytes: source id (u32), hits (u32), reserved
_HIT = 8  # bytes: channel, bx, adc, flags (u16 each): 4 words


def word_views(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (uint8) as native 16-bit words from byte 0 and from byte 1."""
    even, odd = (np.frombuffer(data, "<u2", count=(len(data) - shift) // 2, offset=shift)
                 .astype("=u2", copy=False) for shift in (0, 1))  # fmt: skip
    return even, odd


@njit(inline="always")
def _u32(data: np.ndarray, at: int) -> np.int64:
    return (np.int64(data[at]) | (np.int64(data[at + 1]) << 8) | (np.int64(data[at + 2]) << 16)
            | (np.int64(data[at + 3]) << 24))  # fmt: skip


@njit(cache=True, nogil=True)
def walk_blocks(
    data: np.ndarray,
    words: tuple[np.ndarray, np.ndarray],
    at: np.ndarray,
    end: np.ndarray,
    left: np.ndarray,
    channels_of: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The source blocks of TFs whose own headers were sound: TF ``i``'s ``left[i]`` blocks
    lie from ``at[i]`` to ``end[i]``. Returns the blocks with hits of the TFs found sound, in
    order (each's first hit's byte offset, hit count, source id, and ``i``), and per TF its
    verdict and numbers (``SOUND``...). A source id below ``len(channels_of)`` has that many
    channels (0: no limit); a hit on a channel at or past them breaks its TF."""
    n_tfs = len(at)
    capacity = 0
    for i in range(n_tfs):
        capacity += min(left[i], max(end[i] - at[i], 0) // _SOURCE_HEADER)
    start, hits = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
    source, tf = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
    verdict = np.zeros((n_tfs, 4), np.int64)
    size = 0
    for i in range(n_tfs):
        first, p, e, code, bad = size, at[i], end[i], SOUND, -1
        for _ in range(left[i]):
            if p + _SOURCE_HEADER > e:
                code = HEADER_PAST
                break
            block_source, n_hits = _u32(data, p), _u32(data, p + 4)
            stop = p + _SOURCE_HEADER + _HIT * n_hits
            if stop > e:
                code = OVERRUN
                verdict[i, 1], verdict[i, 2] = block_source, n_hits
                break
            if n_hits:
                hit_at = stop - _HIT * n_hits
                start[size], hits[size], source[size], tf[size] = hit_at, n_hits, block_source, i
                # Its channels now, while its bytes stream past (the walk reads the TF in
                # order, which the CPU prefetches): a maximum, which vectorises, not a search.
                limit = channels_of[block_source] if block_source < len(channels_of) else 0
                w, q = words[hit_at & 1], hit_at >> 1
                highest = 0
                for r in range(q, q + 4 * n_hits if limit and bad < 0 else q, 4):
                    highest = max(highest, w[r])
                if highest >= limit > 0:
                    bad = size
                size += 1
            p = stop
        if code == SOUND and p != e:
            code = TRAILING
            verdict[i, 1] = e - p
        if code == SOUND and bad >= 0:  # a broken layout is the reason first, then a channel
            limit = channels_of[source[bad]]
            w, q = words[start[bad] & 1], start[bad] >> 1
            while w[q] < limit:
                q += 4
            code = CHANNEL
            verdict[i, 1], verdict[i, 2], verdict[i, 3] = w[q], source[bad], limit
        if code != SOUND:
            size = first
        verdict[i, 0] = code
    return start[:size], hits[:size], source[:size], tf[:size], verdict


@njit(cache=True, nogil=True)
def count_hits(
    words: tuple[np.ndarray, np.ndarray],
    start: np.ndarray,
    hits: np.ndarray,
    bins: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    counts: tuple[np.ndarray, np.ndarray, np.ndarray],
    shifts: tuple[int, int, int],
) -> None:
    """Count every hit of the blocks in one pass. ``bins`` per block: occupancy base, stride
    and channel limit, adc's first bin and bx's; a hit's occupancy bin is ``base + channel *
    stride`` (none at or past the limit), its adc bin ``adc_first + min(adc >> adc_shift,
    adc_top)`` and its bx bin ``bx_first + (bx >> bx_shift)``, ``shifts`` being (adc_shift,
    adc_top, bx_shift). A block whose base is negative (an unmapped source) is not counted."""
    base, stride, limit, adc_first, bx_first = bins
    occupancy, adcs, bxs = counts
    adc_shift, adc_top, bx_shift = shifts
    for b in range(len(start)):
        if base[b] < 0:
            continue
        w, q = words[start[b] & 1], start[b] >> 1
        o, s, top, a0, x0 = base[b], stride[b], limit[b], adc_first[b], bx_first[b]
        for r in range(q, q + 4 * hits[b], 4):
            channel = np.int64(w[r])
            if channel < top:
                occupancy[o + channel * s] += 1
            adcs[a0 + min(np.int64(w[r + 2]) >> adc_shift, adc_top)] += 1
            bxs[x0 + (np.int64(w[r + 1]) >> bx_shift)] += 1
