"""The stored form of histograms and their counts (partials, a run's content, its cycles,
references): zlib-ng (level 1: fast) of a JSON head (the counts, and each histogram's name and
structure, UHI without its bins) and each histogram's bins in turn, in boost-histogram's own
order. Counts are stored as the smallest unsigned integers that hold them (a partial's bins are
mostly 0 and small), anything else as the histogram stores it, so loading is exact. Entries of
the same name add up."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import boost_histogram as bh
import numpy as np
from boost_histogram.serialization import from_uhi, to_uhi
from zlib_ng import zlib_ng

# A histogram to store: its name, structure (``structure``) and bins, shaped as its
# ``view(flow=True)``.
Entry = tuple[str, dict[str, Any], np.ndarray]


def structure(histogram: bh.Histogram) -> dict[str, Any]:
    """A histogram's axes, storage type and metadata (UHI without the bins)."""
    return to_uhi(histogram, keep_storage=False)


def write(counts: dict[str, Any], entries: Iterable[Entry]) -> bytes:
    head: dict[str, Any] = {"counts": counts, "histograms": []}
    arrays = []
    for name, uhi, bins in entries:
        values = _packed(bins)
        head["histograms"].append({
            "name": name, "uhi": uhi, "dtype": np.lib.format.dtype_to_descr(values.dtype),
            "shape": values.shape,
        })  # fmt: skip
        arrays.append(values.tobytes(order="F"))  # boost-histogram's order: the first axis fastest
    encoded = json.dumps(head, default=json_default).encode()
    return zlib_ng.compress(len(encoded).to_bytes(4, "little") + encoded + b"".join(arrays), 1)


def read(data: bytes) -> tuple[dict[str, Any], list[tuple[str, bh.Histogram]]]:
    """The counts and the histograms, in the order written."""
    raw = zlib_ng.decompress(data)
    length = int.from_bytes(raw[:4], "little")
    head = json.loads(raw[4 : 4 + length])
    at, histograms = 4 + length, []
    for entry in head["histograms"]:
        dtype = np.lib.format.descr_to_dtype(_tuples(entry["dtype"]))
        shape = tuple(entry["shape"])
        count = int(np.prod(shape))
        histogram = from_uhi(entry["uhi"])
        bins = np.frombuffer(raw, dtype=dtype, count=count, offset=at)
        histogram.view(flow=True)[...] = bins.reshape(shape, order="F")
        at += count * dtype.itemsize
        histograms.append((entry["name"], histogram))
    return head["counts"], histograms


def names(data: bytes) -> list[str]:
    """The histograms' names, in the order written, from the head alone: the bins are neither
    decompressed nor read."""
    inflate = zlib_ng.decompressobj()
    length = int.from_bytes(inflate.decompress(data, 4), "little")
    head = json.loads(inflate.decompress(inflate.unconsumed_tail, length))
    return [entry["name"] for entry in head["histograms"]]


def json_default(value: Any) -> Any:
    """numpy values as JSON (``json.dumps(..., default=json_default)``)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _packed(values: np.ndarray) -> np.ndarray:
    """Counts (integers from 0 to 2**32 - 1) as the smallest unsigned integers that hold them;
    anything else as it is."""
    if values.dtype.kind not in "fiu" or not values.size:
        return values
    bottom, top = values.min(), values.max()
    if not (bottom >= 0 and top < 1 << 32):  # NaN too
        return values
    dtype = np.uint8 if top < 1 << 8 else np.uint16 if top < 1 << 16 else np.uint32
    packed = values.astype(dtype, order="F")
    return values if values.dtype.kind == "f" and not np.array_equal(packed, values) else packed


def _tuples(descr: Any) -> Any:
    """A dtype's description back from JSON: a structured one's fields as tuples again."""
    return [tuple(field) for field in descr] if isinstance(descr, list) else descr
