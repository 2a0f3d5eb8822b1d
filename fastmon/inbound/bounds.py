"""Free-form JSON a message carries (an STF announcement's other fields, a run's conditions, a
worker's metrics) is kept, and served in lists, up to a size: a body may be a mebibyte, and one
such value stored whole made lists of megabytes. What is cut is said, where the value was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_json

# The entry that stands for what was left out of a value.
CUT = "fastmon_cut"
_NAMED = 10  # left-out keys named in it, at most, each cut to _NAME_CHARS
_NAME_CHARS = 100


def json_size(value: Any) -> int:
    """The bytes of ``value`` as compact JSON (UTF-8)."""
    try:
        return len(to_json(value))
    except ValueError:  # a lone surrogate, which UTF-8 cannot hold: counted escaped
        return len(json.dumps(value, separators=(",", ":")))


def bounded(value: Mapping[str, Any], limit: int, depth: int = 1) -> dict[str, Any]:
    """``value`` whole when its JSON is at most ``limit`` bytes. Else its entries in order while
    they fit (an entry that is itself an object, ``depth`` levels down, cut the same way), and,
    when entries were left out, a ``fastmon_cut`` entry: the whole value's size, how many were
    left out, the keys of the first ``_NAMED``."""
    size = json_size(value)
    return dict(value) if size <= limit else _cut(value, size, limit, depth)


def _cut(value: Mapping[str, Any], size: int, limit: int, depth: int) -> dict[str, Any]:
    """``bounded`` past its limit, ``value``'s ``size`` measured already: an entry cut in turn is
    not serialized again to learn it, nor a key for each sum."""
    kept: dict[str, Any] = {}
    left_out: list[str] = []
    room = limit
    for key, item in value.items():
        key_size = json_size(key) + 2  # the colon and the comma
        item_size = json_size(item)
        if key_size + item_size > room and depth > 0 and isinstance(item, Mapping):
            item = _cut(item, item_size, room - key_size, depth - 1)
            item_size = json_size(item)
        if key_size + item_size <= room:
            kept[key] = item
            room -= key_size + item_size
        else:
            left_out.append(key)
    if left_out:
        kept[CUT] = {
            "bytes": size,
            "left_out": len(left_out),
            "keys": [key[:_NAME_CHARS] for key in left_out[:_NAMED]],
        }
    return kept
