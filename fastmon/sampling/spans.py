"""Where a range of Time Frames lies in an STF file: by the TF boundaries an announcement gives,
else an equal share of the file per TF."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TfBoundaries:
    """Where an STF's TFs start (``tf_count + 1`` offsets, the last where the TFs end), and
    who said so: the announcement (``announced``), the file's own index (``index``), or nobody
    (``equal``: ``offsets`` is None and each TF is an equal share of the file)."""

    offsets: Sequence[int] | None
    kind: str

    def within(self, tf_first: int, tf_last: int) -> list[int] | None:
        """The offsets of TFs ``tf_first..tf_last`` relative to the first's start."""
        if self.offsets is None:
            return None
        base = self.offsets[tf_first]
        return [offset - base for offset in self.offsets[tf_first : tf_last + 2]]


EQUAL = TfBoundaries(None, "equal")


def tf_offset(index: int, tf_count: int, file_size: int) -> int:
    """Byte offset where TF ``index`` starts when TFs share the file equally."""
    return index * file_size // tf_count


def byte_spans(
    tf_count: int,
    ranges: Sequence[tuple[int, int]],
    boundaries: Sequence[int] | None,
    file_size: int,
) -> list[tuple[int, int]]:
    """The ``(start, end)`` bytes of each ``(tf_first, tf_last)`` range: by ``boundaries``
    (``tf_count + 1`` offsets, when the announcement gives them), else equal shares."""
    if boundaries is not None:
        return [(boundaries[first], boundaries[last + 1]) for first, last in ranges]
    return [
        (tf_offset(first, tf_count, file_size), tf_offset(last + 1, tf_count, file_size))
        for first, last in ranges
    ]
