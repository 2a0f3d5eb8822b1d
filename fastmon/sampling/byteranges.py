"""HTTP answers to ranged GETs, read with bounds: one range (a 206 with ``Content-Range``) or
several (``multipart/byteranges``), each range checked against what was asked and its bytes fed
to the checksums at their offsets.

Whatever a server sends, a request takes in at most its budget (twice the bytes it asked for,
and some for headers); the multipart parser looks for a delimiter or the end of a part's
headers within LOOKAHEAD bytes, searching each byte once; and every range answered must cover a
whole span that was asked for, so each request completes at least one span: a server cannot
keep a read going by answering beside the question.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from fastmon.sampling.checksums import Checksums, Spans
from fastmon.sampling.roots import RemoteError

LOOKAHEAD = 8192
SLACK = 64 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_PART_RANGE = re.compile(r"content-range:\s*(bytes [^\r\n]+)")


def budget(asked: Spans) -> int:
    """The most bytes an answer to these spans may bring: twice theirs (room for a server that
    joins nearby ranges into one), and SLACK for the parts' headers."""
    return 2 * sum(end - start for start, end in asked) + SLACK


def counted(chunks: Iterable[bytes], allowed: int) -> Iterator[bytes]:
    """The chunks, until they come to more than ``allowed`` bytes."""
    for chunk in chunks:
        allowed -= len(chunk)
        if allowed < 0:
            raise RemoteError("the server sent more than was asked for", transient=False,
                              kind="TooMuchData")  # fmt: skip
        yield chunk


def content_range(header: str) -> tuple[int, int]:
    """A ``Content-Range`` as (start, end), end excluded."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if not match or int(match[2]) < int(match[1]):
        raise RemoteError(f"no usable Content-Range ({header[:100]!r})", transient=False,
                          kind="WrongRange")  # fmt: skip
    return int(match[1]), int(match[2]) + 1


def _check(start: int, end: int, asked: Spans) -> int:
    """Where the answered range stops being of use: the end of the last asked span it touches.
    It must cover at least one asked span whole."""
    if not any(start <= first and last <= end for first, last in asked):
        raise RemoteError(f"the server answered bytes {start}-{end - 1}, not a range asked for",
                          transient=False, kind="WrongRange")  # fmt: skip
    return min(end, max(last for first, last in asked if first < end and last > start))


def read_single(chunks: Iterable[bytes], header: str, asked: Spans, sums: Checksums) -> None:
    """A 206 of one range (``header``, its ``Content-Range``): its bytes fed, up to the last
    asked byte it holds. An answer of just that is read to its end (its connection is kept);
    the rest of a larger one is never read."""
    start, end = content_range(header)
    useful = _check(start, end, asked)
    offset = start
    for chunk in chunks:
        take = min(len(chunk), max(0, useful - offset))
        if take:
            sums.feed(offset, chunk[:take] if take < len(chunk) else chunk)
        offset += len(chunk)
        if offset >= useful and useful < end:
            return
    if offset < useful:
        raise RemoteError("the answer was cut short", transient=True, kind="ShortRead")


def read_parts(chunks: Iterable[bytes], boundary: bytes, asked: Spans, sums: Checksums) -> None:
    """A ``multipart/byteranges`` body, streamed: each part's bytes fed at their offsets."""
    reader = _Reader(chunks)
    delimiter = b"--" + boundary
    reader.until(delimiter)  # the preamble, usually a CRLF
    while reader.peek(2) != b"--":  # the closing delimiter
        headers = reader.until(b"\r\n\r\n").decode("latin-1").lower()
        found = _PART_RANGE.search(headers)
        start, end = content_range(found[1] if found else "")
        _check(start, end, asked)
        offset = start
        for piece in reader.body(end - start):
            sums.feed(offset, piece)
            offset += len(piece)
        reader.until(delimiter)  # the CRLF before it
    for _ in reader.chunks:  # the epilogue: read to the end, the connection is kept
        pass


class _Reader:
    """Bytes from the network, with at most LOOKAHEAD of them (and one chunk) held."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.buffer = bytearray()

    def _next(self) -> bytes:
        chunk = next(self.chunks, None)
        if chunk is None:
            raise RemoteError("the multipart answer was cut short", transient=True,
                              kind="ShortRead")  # fmt: skip
        return chunk

    def peek(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self._next()
        return bytes(self.buffer[:size])

    def until(self, marker: bytes) -> bytes:
        """The bytes before the next ``marker``, taken with it."""
        limit, searched = LOOKAHEAD + len(marker), 0
        while (at := self.buffer.find(marker, max(0, searched - len(marker) + 1), limit)) < 0:
            if len(self.buffer) >= limit:
                raise RemoteError(f"no {marker!r} within {LOOKAHEAD} bytes of a multipart answer",
                                  transient=False, kind="BadMultipart")  # fmt: skip
            searched = len(self.buffer)
            self.buffer += self._next()
        found = bytes(self.buffer[:at])
        del self.buffer[: at + len(marker)]
        return found

    def body(self, length: int) -> Iterator[bytes]:
        """``length`` bytes: those held, then straight from the network (no copy); what comes
        after them is held."""
        while length > 0:
            if self.buffer:
                piece = bytes(self.buffer[:length])
                del self.buffer[:length]
            else:
                chunk = self._next()
                piece = chunk[:length] if len(chunk) > length else chunk
                self.buffer += chunk[len(piece) :]
            length -= len(piece)
            yield piece
