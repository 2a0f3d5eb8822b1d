"""What a decoder is: the plug-in point between TF bytes and hits. Nothing outside a decoder
knows a layout; a site names its decoder in ``FASTMON["CONTENT_DECODER"]`` (the testbed's
``fastmon.content.etf1.Etf1Decoder`` by default)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

import numpy as np
from django.utils.module_loading import import_string

from fastmon.conf import fastmon_settings
from fastmon.content.detectors import DetectorMap

# Bytes of a file: (offset, length) -> exactly those bytes, or fewer at its end.
ReadAt = Callable[[int, int], bytes]


@dataclass
class Corrupt:
    """A TF that could not be decoded: the detector whose block broke (None: the TF's own
    header), and why."""

    detector: str | None
    reason: str


@dataclass
class Decoded:
    """The hits of a batch of consecutive TFs, one numpy array per field (an element per hit),
    and what could not be decoded. ``tf`` numbers each hit's TF within the batch (0..);
    ``decoded`` lists the TFs decoded, hits or not."""

    source: np.ndarray
    channel: np.ndarray
    bx: np.ndarray
    adc: np.ndarray
    flags: np.ndarray
    tf: np.ndarray
    decoded: np.ndarray
    corrupt: list[Corrupt] = field(default_factory=list)
    undecodable: int = 0  # TFs not in this decoder's format at all

    @classmethod
    def empty(cls, undecodable: int = 0) -> Decoded:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, none, none, none, none, [], undecodable)

    @property
    def hits(self) -> int:
        return len(self.source)


class Decoder(Protocol):
    name: str

    def boundaries(self, read: ReadAt, file_size: int) -> list[int] | None:
        """The byte offset of each TF and the end of the last (``tf_count + 1`` numbers), from
        the file itself (a few small reads), or None when it does not say."""
        ...

    def decode(
        self,
        data: bytes | memoryview,
        tf_count: int,
        boundaries: Sequence[int] | None,
        detectors: DetectorMap,
    ) -> Decoded:
        """The hits of ``tf_count`` consecutive TFs in ``data``, whose offsets in ``data``
        (``tf_count + 1`` numbers) are ``boundaries`` when known. Never raises on content and
        never reads outside ``data``: a TF that does not fit is counted as corrupt."""
        ...


@cache
def _decoder(path: str) -> Decoder:
    return import_string(path)()


def configured_decoder() -> Decoder:
    return _decoder(fastmon_settings.CONTENT_DECODER)
