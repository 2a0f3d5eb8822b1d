"""Free-form JSON kept up to a size: whole when it fits, else its entries in order while they
fit, and an entry saying what was left out."""

from __future__ import annotations

import json

from fastmon.inbound.bounds import CUT, bounded, json_size


def test_a_value_that_fits_is_kept_whole() -> None:
    value = {"processing_seconds": 12.5, "events": 1000}
    assert json_size(value) == len(json.dumps(value, separators=(",", ":")))
    assert bounded(value, json_size(value)) == value


def test_entries_are_kept_in_order_while_they_fit_and_the_cut_is_said() -> None:
    value = {"a": 1, "blob": "x" * 1000, "b": 2, **{f"k{n}": "y" * 100 for n in range(20)}}
    kept = bounded(value, 500)
    assert kept["a"] == 1 and kept["b"] == 2  # a small entry after a large one still fits
    assert "blob" not in kept
    left_out = [key for key in value if key not in kept]
    assert kept[CUT] == {"bytes": json_size(value), "left_out": len(left_out),
                         "keys": left_out[:10]}  # fmt: skip
    assert json_size({k: v for k, v in kept.items() if k != CUT}) <= 500


def test_an_object_inside_is_cut_the_same_way_one_level_down() -> None:
    metadata = {
        "stf_gen": {"sender": "runner"},
        "stf_ready": {"processed_by": "data-agent", "tf_offsets": list(range(1000))},
    }
    kept = bounded(metadata, 300)
    assert kept["stf_gen"] == {"sender": "runner"}
    assert kept["stf_ready"]["processed_by"] == "data-agent"
    assert kept["stf_ready"][CUT]["keys"] == ["tf_offsets"]
    assert CUT not in kept  # nothing left out at the top


def test_long_key_names_are_named_in_part_and_text_utf8_cannot_hold_is_measured() -> None:
    kept = bounded({"k" * 1000: 1}, 100)
    assert kept == {CUT: {"bytes": 1006, "left_out": 1, "keys": ["k" * 100]}}
    assert json_size({"a": "\ud800"}) == len('{"a":"\\ud800"}')
