"""Reading sampled Time Frames from STF files: only their byte ranges, never the whole file,
from a local data root or a remote one (``roots``, ``clients``: XRootD, HTTP), a remote read
within its deadline (``deadline``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from fastmon.conf import fastmon_settings
from fastmon.retry import backoff_delay
from fastmon.sampling.checksums import Checksums, adler32
from fastmon.sampling.clients import HttpReader, XRootDReader
from fastmon.sampling.deadline import Deadline
from fastmon.sampling.roots import (
    RemoteError,
    RemoteURL,
    host_slot,
    parse_remote,
    remote_roots,
    under_roots,
)
from fastmon.sampling.spans import EQUAL, TfBoundaries, byte_spans

logger = logging.getLogger("fastmon.sampling")

CHUNK_BYTES = 4 * 1024 * 1024


class Unreachable(Exception):
    """The STF file cannot be read here; the message says why."""


def local_path(file_url: str, stf_filename: str, data_roots: Sequence[str]) -> Path:
    """The readable local file behind ``file_url`` (a path or ``file://`` URL) under one of
    ``data_roots``; raise ``Unreachable`` otherwise. Symlinks and ``..`` are resolved before
    the check, so nothing outside the roots is ever opened."""
    data_roots = [root for root in data_roots if urlparse(root).scheme in ("", "file")]
    if not data_roots:
        raise Unreachable("no data roots configured (FASTMON['DATA_ROOTS'])")
    if not file_url:
        raise Unreachable(f"no file URL announced for {stf_filename}")
    parsed = urlparse(file_url)
    if parsed.scheme == "file":
        raw = unquote(parsed.path)
    elif parsed.scheme == "" and file_url.startswith("/"):
        raw = file_url
    else:
        raise Unreachable(f"{parsed.scheme}:// files are not read locally")
    path = Path(raw).resolve()
    roots = [Path(root).resolve() for root in data_roots]
    # The reasons name the file as announced, never the resolved path (a link's target, a
    # /proc path): they are public, in the samples' metadata.
    if not any(path.is_relative_to(root) for root in roots):
        raise Unreachable(f"{file_url} is outside the data roots")
    if not path.is_file():
        raise Unreachable(f"{file_url} does not exist")
    return path


@dataclass(frozen=True)
class Measured:
    size_bytes: int
    checksum: str  # Adler-32 as the DAQ writes it: "ad:<decimal>"


def read_tf_ranges(
    path: Path,
    tf_count: int,
    ranges: Sequence[tuple[int, int]],
    boundaries: Sequence[int] | None = None,
    kept: list[bytes | bytearray] | None = None,
) -> tuple[list[Measured], int]:
    """Size and Adler-32 of each ``(tf_first, tf_last)`` range, and the bytes read in all.

    ``boundaries`` (``tf_count + 1`` byte offsets, when known) place the TFs; otherwise TF i
    spans an equal share of the file. With ``kept``, each range's bytes are appended to it.
    """
    results, total = [], 0
    with path.open("rb") as stream:
        file_size = path.stat().st_size
        for start, end in byte_spans(tf_count, ranges, boundaries, file_size):
            stream.seek(start)
            adler, remaining, pieces = 1, end - start, []
            while remaining > 0:
                chunk = stream.read(min(CHUNK_BYTES, remaining))
                if not chunk:
                    raise OSError(f"{path} ended at byte {end - remaining}, before {end}")
                adler = adler32(chunk, adler)
                remaining -= len(chunk)
                if kept is not None:
                    pieces.append(chunk)
            if kept is not None:
                kept.append(b"".join(pieces))
            results.append(Measured(end - start, f"ad:{adler}"))
            total += end - start
    return results, total


@dataclass(frozen=True)
class ReadReport:
    """What one STF's sampled ranges came to, and what reading them took."""

    measured: list[Measured]
    bytes_read: int
    file_size: int
    protocol: str  # file, root or http
    seconds: float
    boundaries: TfBoundaries = EQUAL
    # Each range's bytes, when asked to keep them (and they fit the limit).
    kept: Sequence[bytes | bytearray] | None = None


# The TF offsets, given the file's size and a way to read a few of its bytes (an index).
Boundaries = Callable[[int, Callable[[int, int], bytes]], TfBoundaries]


def read_stf(
    file_url: str,
    stf_filename: str,
    data_roots: Sequence[str],
    tf_count: int,
    ranges: Sequence[tuple[int, int]],
    boundaries: Boundaries,
    keep_up_to: int = 0,
) -> ReadReport:
    """Read the sampled ranges where the STF lives; ``Unreachable`` says why it cannot be, with
    the URL and the error class (a remote read is retried first, with backoff, while its error
    is transient and REMOTE_READ_DEADLINE_S leaves time). The ranges' bytes are kept in the
    report when they come to at most ``keep_up_to`` bytes in all."""
    began = time.monotonic()
    try:
        remote = parse_remote(file_url) if file_url else None
    except ValueError as exc:
        raise Unreachable(f"{file_url}: BadURL: {exc}") from None
    if remote is None:
        path = local_path(file_url, stf_filename, data_roots)
        size = path.stat().st_size
        with path.open("rb") as stream:
            found = boundaries(size, lambda offset, length: _read_at(stream, offset, length))
        spans = byte_spans(tf_count, ranges, found.offsets, size)
        kept: list[bytes | bytearray] | None = [] if _keeping(spans, keep_up_to) else None
        measured, read = read_tf_ranges(path, tf_count, ranges, found.offsets, kept)
        return ReadReport(measured, read, size, "file", time.monotonic() - began, found, kept)
    try:
        roots = remote_roots(data_roots)
    except ValueError as exc:
        raise Unreachable(f"a remote data root cannot be read: {exc}") from None
    if not under_roots(remote, roots):
        raise Unreachable(f"{remote} is outside the data roots")
    deadline = Deadline(fastmon_settings.REMOTE_READ_DEADLINE_S)
    attempt = 0
    with deadline.held():
        while True:
            try:
                with _slot(remote, deadline):
                    return _read_remote(remote, roots, deadline, tf_count, ranges, boundaries,
                                        keep_up_to, began)  # fmt: skip
            except RemoteError as exc:
                delay = backoff_delay(attempt)
                if (not exc.transient or attempt >= fastmon_settings.REMOTE_READ_RETRIES
                        or delay >= deadline.left()):  # fmt: skip
                    raise Unreachable(f"{remote}: {exc.kind}: {exc}") from None
                logger.warning("reading %s failed (%s: %s); retry %d in %.1fs", remote, exc.kind,
                               exc, attempt + 1, delay)  # fmt: skip
                time.sleep(delay)
                attempt += 1


@contextmanager
def _slot(url: RemoteURL, deadline: Deadline) -> Iterator[None]:
    """One of the host's slots (REMOTE_MAX_CONCURRENT_PER_HOST), waited for until the
    deadline."""
    slot = host_slot(url)
    if not slot.acquire(timeout=max(0.0, deadline.left())):
        raise deadline.error()
    try:
        yield
    finally:
        slot.release()


def _read_remote(
    url: RemoteURL,
    roots: Sequence[RemoteURL],
    deadline: Deadline,
    tf_count: int,
    ranges: Sequence[tuple[int, int]],
    boundaries: Boundaries,
    keep_up_to: int,
    began: float,
) -> ReadReport:
    reader = (XRootDReader if url.protocol == "root" else HttpReader)(url, roots, deadline)
    try:
        size = reader.size()
        found = boundaries(size, reader.read_at)
        spans = byte_spans(tf_count, ranges, found.offsets, size)
        if any(end > size for _, end in spans):
            raise RemoteError(f"a range ends past the file's {size} bytes", transient=False,
                              kind="ShortFile")  # fmt: skip
        sums = Checksums(spans, keep=_keeping(spans, keep_up_to))
        checksums = reader.adler32(spans, sums)
    finally:
        reader.close()
    measured = [
        Measured(end - start, f"ad:{adler}")
        for (start, end), adler in zip(spans, checksums, strict=True)
    ]
    read = sum(end - start for start, end in spans)
    return ReadReport(measured, read, size, url.protocol, time.monotonic() - began, found,
                      sums.kept)  # fmt: skip


def _keeping(spans: Sequence[tuple[int, int]], up_to: int) -> bool:
    return 0 < sum(end - start for start, end in spans) <= up_to


def _read_at(stream: BinaryIO, offset: int, length: int) -> bytes:
    stream.seek(offset)
    return stream.read(length)
