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
from fastmon.content.histograms import stored_fill

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
        decoder, detectors = configured_decoder(), detector_map()
        batches = (decoder.decode(memoryview(data), r.tf_last - r.tf_first + 1,
                                  boundaries.within(r.tf_first, r.tf_last), detectors)
                   for r, data in zip(ranges, kept, strict=True))  # fmt: skip
        return stored_fill(batches, detectors)  # a range at a time: their bytes are not joined
    except Exception:
        logger.exception("content of %s not decoded", stf_filename)
        return None
