"""fastmon_tail's arithmetic on its own: live events in, per-run totals, recent rates and the
table out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastmon.tail.tally import Tally, describe, human_bytes, table

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def frame(sequence: int, kind: str, run: int | None, payload: Any, at: float = T0) -> dict:
    created = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return {"sequence": sequence, "kind": kind, "run_number": run, "payload": payload,
            "created_at": created}  # fmt: skip


def samples(stf: str, *sizes: int, estimated: bool = False) -> dict:
    return {
        "stf_filename": stf,
        "samples": [
            {"tf_filename": f"{stf}.tf{n}", "tf_first": n, "tf_last": n, "tf_count": 1,
             "file_size_bytes": size, "size_estimated": estimated, "status": "registered"}
            for n, size in enumerate(sizes)
        ],
    }  # fmt: skip


def test_tally_sums_a_run_and_its_rates_over_the_window() -> None:
    tally = Tally(window_s=10)
    tally.add(frame(1, "run", 7, {"run_number": 7, "state": "run", "substate": "physics"}))
    stfs = [{"stf_filename": f"swf.7.{n}.stf", "state": "run", "substate": "physics"}
            for n in (1, 2, 3)]  # fmt: skip
    tally.add(frame(2, "stf", 7, {"stfs": stfs}))
    tally.add(frame(3, "tf_samples", 7, samples("swf.7.1.stf", 1_000_000, 2_000_000), T0 - 30))
    tally.add(frame(4, "tf_samples", 7, samples("swf.7.2.stf", 5_000_000, 5_000_000), T0 - 4))
    tally.add(frame(5, "tf_samples", 8, samples("swf.8.1.stf", 10, estimated=True), T0 - 1))

    eight, seven = tally.rows(now=T0)  # highest run first
    assert (seven.stfs, seven.sampled_stfs, seven.tf_samples, seven.bytes) == (3, 2, 4, 13_000_000)
    # Only the samples of the last 10 s count towards the rates: 2 samples, 10 MB.
    assert (seven.tf_samples_per_s, seven.bytes_per_s) == (0.2, 1_000_000)
    assert seven.line() == (
        "run 7: state run/physics, STFs 3, sampled 2, TF samples 4, volume 13.0 MB, "
        "TF/s 0.2, MB/s 1.0"
    )
    # A run seen only through its samples: no run state yet, sizes estimated.
    assert (eight.run_number, eight.state, eight.stfs, eight.estimated) == (8, "", 1, True)
    assert eight.cells()[1] == "-" and eight.cells()[5] == "~10 B"
    assert [row.tf_samples_per_s for row in tally.rows(now=T0 + 60)] == [0, 0]
    assert tally.summary() == "sequence 5, dead letters 0, alarms 0"


def test_tally_takes_the_machine_state_from_stfs_until_a_run_event_says() -> None:
    tally = Tally()
    tally.add(frame(1, "stf", 9, {"stfs": [{"stf_filename": "a", "state": "run",
                                             "substate": "beam"}]}))  # fmt: skip
    assert tally.rows(T0)[0].state == "run/beam"
    tally.add(frame(2, "run", 9, {"state": "paused"}))
    assert tally.rows(T0)[0].state == "paused"


def test_tally_survives_what_it_does_not_know() -> None:
    tally = Tally()
    odd = [
        frame(1, "tf_samples", 1, None),
        frame(2, "tf_samples", 1, {"samples": "nope", "stf_filename": 3}),
        frame(
            3,
            "tf_samples",
            1,
            {"samples": [None, {"file_size_bytes": "12"}, {"file_size_bytes": True}]},
        ),
        frame(4, "stf", "1", {"stfs": [1, {"stf_filename": None}, {}]}),
        frame(5, "run", None, ["state"]),
        {"sequence": "x", "kind": "tf_samples", "created_at": "yesterday"},
        {},
        frame(6, "calibration", 1, {"constants": list(range(200))}),
        frame(7, "dead_letter", None, {"id": 3}),
        frame(8, "alarm", 1, {"severity": "error", "message": "disk full"}),
    ]
    for event in odd:
        tally.add(event)
        describe(event)
    rows = {row.run_number: row for row in tally.rows(T0)}
    assert rows[1].tf_samples == 2 and rows[1].bytes == 0
    assert tally.summary() == "sequence 8, dead letters 1, alarms 1, None 1, calibration 1"
    assert describe(odd[7]).startswith('#6 calibration run 1: {"constants": [0, 1')
    assert describe(odd[7]).endswith("...") and len(describe(odd[7])) < 200


def test_tally_forgets_the_stalest_run_past_its_limit() -> None:
    tally = Tally(max_runs=2)
    for sequence, run in enumerate((1, 2, 1, 3), 1):
        tally.add(frame(sequence, "tf_samples", run, samples("x", 1)))
    assert [row.run_number for row in tally.rows(T0)] == [3, 1]


def test_notable_events_read_as_one_line_and_traffic_as_none() -> None:
    assert describe(frame(4, "run", 5, {"state": "run", "substate": "physics",
                                        "msg_type": "start_run"})) == (
        "#4 run 5: start_run -> run/physics"
    )  # fmt: skip
    assert describe(frame(5, "dead_letter", None, {
        "id": 12, "reason_code": "invalid_json", "reason": "body is not JSON", "msg_type": None,
    })) == "#5 dead letter 12 (-): invalid_json: body is not JSON"  # fmt: skip
    assert describe(frame(6, "alarm", 5, {"severity": "warning", "message": "slow"})) == (
        "#6 ALARM warning: slow"
    )
    assert describe(frame(7, "stf", 5, {"stfs": []})) is None
    assert describe(frame(8, "tf_samples", 5, samples("x", 1))) is None


def test_table_aligns_columns_and_sizes_read_in_decimal_units() -> None:
    tally = Tally()
    tally.add(frame(1, "tf_samples", 101993, samples("a", 2_147_483_648)))
    tally.add(frame(2, "tf_samples", None, samples("b", 999)))
    assert table(tally.rows(T0 + 100)) == [
        "run     state  STFs  sampled  TF samples  volume  TF/s  MB/s",
        "101993  -         1        1           1  2.1 GB   0.0   0.0",
        "-       -         1        1           1   999 B   0.0   0.0",
    ]
    assert [human_bytes(n) for n in (0, 1000, 1_500_000, 3e12, 4e18)] == [
        "0 B", "1.0 kB", "1.5 MB", "3.0 TB", "4000.0 PB",
    ]  # fmt: skip
