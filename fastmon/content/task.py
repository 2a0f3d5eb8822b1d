"""The content task of a sampled STF (ALICE QC's "task"): its sampled ranges decoded and filled
into histograms, ready to store beside its samples. Never fails a sample: content that cannot
be decoded is counted, and a fault of the decoder or a task is logged and leaves the STF
without content."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from fastmon.content.decoding import configured_decoder
from fastmon.content.detectors import detector_map
from fastmon.content.histograms import Content, fill

logger = logging.getLogger("fastmon.content")


class Range(Protocol):
    @property
    def tf_first(self) -> int: ...
    @property
    def tf_last(self) -> int: ...


class Boundaries(Protocol):
    def within(self, tf_first: int, tf_last: int) -> list[int] | None: ...


def sampled_content(
    stf_filename: str,
    ranges: Sequence[Range],
    kept: Sequence[bytes | bytearray] | None,
    boundaries: Boundaries,
) -> bytes | None:
    """The stored histograms of these ranges, whose bytes are ``kept`` (one entry each); None
    when nothing was kept or decoding failed."""
    if kept is None:
        return None
    try:
        decoder, detectors, content = configured_decoder(), detector_map(), Content()
        for data, tf_count, within in _batches(ranges, kept, boundaries):
            fill(content, decoder.decode(data, tf_count, within, detectors), detectors)
        return content.dumps()
    except Exception:
        logger.exception("content of %s not decoded", stf_filename)
        return None


def _batches(
    ranges: Sequence[Range], kept: Sequence[bytes | bytearray], boundaries: Boundaries
) -> list[tuple[memoryview, int, list[int] | None]]:
    """The ranges as decoder calls: all in one (their bytes joined, the offsets shifted) when
    the TF offsets are known, which spares a call's fixed cost per range; else one a range."""
    counts = [r.tf_last - r.tf_first + 1 for r in ranges]
    within = [boundaries.within(r.tf_first, r.tf_last) for r in ranges]
    if not all(w is not None and w[-1] == len(data) for w, data in zip(within, kept, strict=True)):
        return [(memoryview(data), n, w) for data, n, w in zip(kept, counts, within, strict=True)]
    joined, at = [0], 0
    for offsets in within:
        assert offsets is not None
        joined += [at + offset for offset in offsets[1:]]
        at += offsets[-1]
    return [(memoryview(b"".join(kept)), sum(counts), joined)]
