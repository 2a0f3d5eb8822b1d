"""Reading sampled Time Frames from STF files: only their byte ranges, never the whole file."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

CHUNK_BYTES = 4 * 1024 * 1024


class Unreachable(Exception):
    """The STF file cannot be read here; the message says why."""


def local_path(file_url: str, stf_filename: str, data_roots: Sequence[str]) -> Path:
    """The readable local file behind ``file_url`` (a path or ``file://`` URL) under one of
    ``data_roots``; raise ``Unreachable`` otherwise. Symlinks and ``..`` are resolved before
    the check, so nothing outside the roots is ever opened."""
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
    if not any(path.is_relative_to(root) for root in roots):
        raise Unreachable(f"{path} is outside the data roots")
    if not path.is_file():
        raise Unreachable(f"{path} does not exist")
    return path


@dataclass(frozen=True)
class Measured:
    size_bytes: int
    checksum: str  # Adler-32 as the DAQ writes it: "ad:<decimal>"


def tf_offset(index: int, tf_count: int, file_size: int) -> int:
    """Byte offset where TF ``index`` starts when TFs share the file equally."""
    return index * file_size // tf_count


def read_tf_ranges(
    path: Path,
    tf_count: int,
    ranges: Sequence[tuple[int, int]],
    boundaries: Sequence[int] | None = None,
) -> tuple[list[Measured], int]:
    """Size and Adler-32 of each ``(tf_first, tf_last)`` range, and the bytes read in all.

    ``boundaries`` (``tf_count + 1`` byte offsets, when the announcement gives them) place the
    TFs; otherwise TF i spans an equal share of the file.
    """
    results, total = [], 0
    with path.open("rb") as stream:
        file_size = path.stat().st_size
        for tf_first, tf_last in ranges:
            if boundaries is not None:
                start, end = boundaries[tf_first], boundaries[tf_last + 1]
            else:
                start = tf_offset(tf_first, tf_count, file_size)
                end = tf_offset(tf_last + 1, tf_count, file_size)
            stream.seek(start)
            adler, remaining = 1, end - start
            while remaining > 0:
                chunk = stream.read(min(CHUNK_BYTES, remaining))
                if not chunk:
                    raise OSError(f"{path} ended at byte {end - remaining}, before {end}")
                adler = zlib.adler32(chunk, adler)
                remaining -= len(chunk)
            results.append(Measured(end - start, f"ad:{adler}"))
            total += end - start
    return results, total
