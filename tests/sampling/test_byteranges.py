"""Ranged answers read with bounds, on answers made up in memory (pure logic: the hostile
server's are in ``test_clients``): what a request takes in, how far the multipart parser looks,
and answers beside the question."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator

import pytest

from fastmon.sampling.byteranges import (
    LOOKAHEAD,
    budget,
    counted,
    read_parts,
    read_single,
)
from fastmon.sampling.checksums import Checksums
from fastmon.sampling.roots import RemoteError

DATA = bytes(range(256)) * 64  # 16 KiB


class Taken:
    """Chunks handed out, and how many bytes of them."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.bytes = chunks, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.bytes += len(chunk)
            yield chunk


def part(start: int, end: int) -> bytes:
    return (f"\r\n--B\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Range: bytes {start}-{end - 1}/{len(DATA)}\r\n\r\n").encode() + \
        DATA[start:end]  # fmt: skip


def test_a_multipart_answer_is_fed_part_by_part_in_any_chunking() -> None:
    asked = [(10, 20), (1000, 3000), (9000, 9001)]
    body = b"".join(part(start, end) for start, end in asked) + b"\r\n--B--\r\n"
    for size in (1, 7, 4096):
        sums = Checksums(asked)
        chunks = (body[at : at + size] for at in range(0, len(body), size))
        read_parts(counted(chunks, budget(asked)), b"B", asked, sums)
        assert sums.results() == [zlib.adler32(DATA[start:end]) for start, end in asked]


def test_a_multipart_answer_without_a_delimiter_is_given_up_within_the_lookahead() -> None:
    endless = Taken(itertools.repeat(b"x" * 1000))
    with pytest.raises(RemoteError, match="no b'--B' within") as caught:
        read_parts(endless, b"B", [(0, 10)], Checksums([(0, 10)]))
    assert caught.value.kind == "BadMultipart" and not caught.value.transient
    assert endless.bytes <= LOOKAHEAD + 2 * 1000  # held: the lookahead and a chunk


def test_part_headers_without_an_end_are_given_up_within_the_lookahead() -> None:
    endless = Taken(itertools.chain([b"--B\r\nContent-Range: "], itertools.repeat(b"y" * 100)))
    with pytest.raises(RemoteError, match="within"):
        read_parts(endless, b"B", [(0, 10)], Checksums([(0, 10)]))
    assert endless.bytes <= LOOKAHEAD + 200


@pytest.mark.parametrize("answered", [(20, 30), (15, 25), (0, 15)])
def test_a_range_beside_the_one_asked_for_is_refused_at_once(answered: tuple[int, int]) -> None:
    start, end = answered
    with pytest.raises(RemoteError, match="not a range asked for") as caught:
        read_single([DATA[start:end]], f"bytes {start}-{end - 1}/{len(DATA)}", [(10, 20)],
                    Checksums([(10, 20)]))  # fmt: skip
    assert caught.value.kind == "WrongRange" and not caught.value.transient
    with pytest.raises(RemoteError, match="not a range asked for"):
        read_parts([part(start, end)], b"B", [(10, 20)], Checksums([(10, 20)]))


def test_a_range_larger_than_asked_is_read_only_as_far_as_needed() -> None:
    sums = Checksums([(100, 200)])
    rest = Taken(iter([DATA[0:150], DATA[150:300], DATA[300:]]))
    read_single(rest, f"bytes 0-{len(DATA) - 1}/{len(DATA)}", [(100, 200)], sums)
    assert sums.results() == [zlib.adler32(DATA[100:200])]
    assert rest.bytes == 300  # the third chunk never taken


def test_an_answer_is_cut_off_past_its_budget() -> None:
    asked = [(0, 100)]
    with pytest.raises(RemoteError, match="more than was asked for") as caught:
        list(counted(itertools.repeat(b"z" * 4096), budget(asked)))
    assert caught.value.kind == "TooMuchData"
    assert budget(asked) == 200 + 64 * 1024


def test_an_answer_cut_short_is_worth_trying_again() -> None:
    with pytest.raises(RemoteError, match="cut short") as caught:
        read_single([DATA[10:15]], f"bytes 10-19/{len(DATA)}", [(10, 20)], Checksums([(10, 20)]))
    assert caught.value.transient
