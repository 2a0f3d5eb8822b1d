"""The built-in checks as pure logic: each fires on its fault and clears when it is gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastmon.quality.builtin import (
    DeadLetterRate,
    EndRunTotal,
    SampleLatency,
    SliceFailures,
    StfAbsence,
    StfRateDrop,
    StfSequence,
    StfSizeOutlier,
)
from fastmon.quality.framework import RunFacts, SampleSeen, StfSeen, Window
from fastmon.quality.verdicts import Quality
from fastmon.testing.messages import stf_name

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RUN = RunFacts(100200, "run", "physics", T0 - timedelta(hours=1), None)
NO_LETTERS = Window(dead_letters_since=lambda since: 0)


def stf(n: int, at: float = 0.0, size: int | None = 2_000_000, new: bool = True,
        daq: float | None = None, **kw) -> StfSeen:  # fmt: skip
    """STF ``n`` received ``at`` seconds after T0, made by the DAQ ``daq`` seconds after it."""
    made = None if daq is None else T0 + timedelta(seconds=daq)
    return StfSeen(stf_name(100200, n), n, size, T0 + timedelta(seconds=at), new, daq_at=made,
                   **kw)  # fmt: skip


def test_a_gap_is_bad_until_the_missing_stf_turns_up_late() -> None:
    check, memory = StfSequence(), {}
    assert check.on_stfs(memory, RUN, [stf(1), stf(2)]).quality is Quality.GOOD
    gap = check.on_stfs(memory, RUN, [stf(5)])
    assert gap.quality is Quality.BAD and "2 missing (3, 4)" in gap.reason
    assert check.on_stfs(memory, RUN, [stf(3), stf(4)]).quality is Quality.MEDIUM  # late
    assert memory["missing_total"] == 0 and memory["late"] == 2


def test_a_number_outside_the_runs_plausible_range_is_no_gap() -> None:
    check, memory = StfSequence(), {}
    check.on_stfs(memory, RUN, [stf(n) for n in range(1, 11)])
    odd = check.on_stfs(memory, RUN, [stf(2147483647), stf(0)])
    assert odd.quality is Quality.MEDIUM, odd
    assert odd.reason == "STF sequence: 2 implausible (2147483647, 0)"
    assert check.on_stfs(memory, RUN, [stf(11), stf(12)]).quality is Quality.MEDIUM  # it stays
    assert memory["missing_total"] == 0 and memory["last"] == 12
    assert StfSequence(max_jump=5).on_stfs({}, RUN, [stf(7)]).reason.endswith("1 implausible (7)")


def test_a_late_stf_beyond_the_remembered_gaps_is_late_not_a_duplicate() -> None:
    check, memory = StfSequence(), {}
    check.on_stfs(memory, RUN, [stf(1), stf(20_005)])  # a gap of 20,003 numbers
    late = check.on_stfs(memory, RUN, [stf(15_000)]).reason
    assert late == "STF sequence: 20002 missing (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...); 1 late"
    # More gaps than are remembered: one in a forgotten gap is late, again not a duplicate.
    many = StfSequence()
    memory = {}
    many.on_stfs(memory, RUN, [stf(n) for n in range(1, 20_004, 2)])  # 10,001 gaps
    assert len(memory["gaps"]) == 10_000 and memory["unkept"] == 1
    filled = many.on_stfs(memory, RUN, [stf(20_002), stf(2)])
    assert "2 late" in filled.reason and "duplicated" not in filled.reason, filled
    assert memory["missing_total"] == 9_999 and memory["unkept"] == 0
    assert "1 duplicated" in many.on_stfs(memory, RUN, [stf(3)]).reason  # nothing forgotten now


def test_duplicates_are_bad_and_a_tolerance_can_be_set() -> None:
    check, memory = StfSequence(), {}
    check.on_stfs(memory, RUN, [stf(1), stf(2)])
    repeated = check.on_stfs(memory, RUN, [stf(2, new=False, repeated=True)])
    assert repeated.quality is Quality.BAD and "1 duplicated" in repeated.reason
    tolerant = StfSequence(max_duplicates=1)
    once = tolerant.on_stfs({}, RUN, [stf(1), stf(1, new=False, repeated=True)])
    assert once.quality is Quality.GOOD
    assert check.on_stfs(memory, RUN, [stf(2, new=False)]).quality is Quality.BAD  # it stays


def test_end_run_total_against_the_stfs_seen() -> None:
    check, memory = EndRunTotal(), {}
    check.on_stfs(memory, RUN, [stf(1), stf(2), stf(2, new=False)])
    ended = RunFacts(100200, "ended", "", T0, 3)
    assert check.on_end(memory, ended).quality is Quality.BAD
    assert "end_run says 3 STFs, 2 seen" in check.on_end(memory, ended).reason
    assert check.on_end(memory, RunFacts(100200, "ended", "", T0, 2)).quality is Quality.GOOD
    assert check.on_end({}, RunFacts(100200, "ended", "", T0, None)).quality is Quality.NULL


def test_absence_is_held_while_fastmon_is_cut_off_and_counts_from_its_reconnection() -> None:
    check, memory = StfAbsence(max_silence_s=10), {}
    check.on_stfs(memory, RUN, [stf(1)])
    cut_off = Window(NO_LETTERS.dead_letters_since, connected=False)
    assert check.on_tick(memory, RUN, T0 + timedelta(seconds=60), cut_off) is None  # held
    back = Window(NO_LETTERS.dead_letters_since, connected_since=T0 + timedelta(seconds=58))
    assert check.on_tick(memory, RUN, T0 + timedelta(seconds=60), back).quality is Quality.GOOD
    later = check.on_tick(memory, RUN, T0 + timedelta(seconds=70), back)
    assert later.quality is Quality.BAD and "no STF for 12 s" in later.reason


def test_absence_while_running_fires_and_clears() -> None:
    check, memory = StfAbsence(max_silence_s=10), {}
    check.on_stfs(memory, RUN, [stf(1)])
    assert check.on_tick(memory, RUN, T0 + timedelta(seconds=5), NO_LETTERS).quality is Quality.GOOD
    stalled = check.on_tick(memory, RUN, T0 + timedelta(seconds=15), NO_LETTERS)
    assert stalled.quality is Quality.BAD and "no STF for 15 s" in stalled.reason
    assert check.on_stfs(memory, RUN, [stf(2, at=16)]).quality is Quality.GOOD
    # A state change restarts the clock (a resumed run is not stalled for its pause).
    resumed = RunFacts(100200, "run", "physics", T0 + timedelta(seconds=30), None)
    later = T0 + timedelta(seconds=35)
    assert check.on_tick(memory, resumed, later, NO_LETTERS).quality is Quality.GOOD


def test_a_rate_drop_against_the_runs_own_rate() -> None:
    """Windows on the DAQ's clock, each complete once a later one has an STF."""
    check, memory = StfRateDrop(window_s=10, min_history=3), {}
    base = T0.timestamp() // 10 * 10 - T0.timestamp()  # T0 + base starts a window
    check.on_stfs(memory, RUN, [stf(n, daq=base + n * 0.5) for n in range(80)])  # 2/s, 40 s
    check.on_stfs(memory, RUN, [stf(100 + n, daq=base + 40 + n * 5) for n in range(2)])  # 0.2/s
    assert check.on_tick(memory, RUN, T0, NO_LETTERS).quality is Quality.GOOD  # 40-50 open
    check.on_stfs(memory, RUN, [stf(200, daq=base + 50.5)])
    dropped = check.on_tick(memory, RUN, T0, NO_LETTERS)
    assert dropped.quality is Quality.MEDIUM and "0.20/s, usually 2.00/s" in dropped.reason
    check.on_stfs(memory, RUN, [stf(300 + n, daq=base + 51 + n * 0.5) for n in range(20)])
    assert check.on_tick(memory, RUN, T0, NO_LETTERS).quality is Quality.GOOD
    # A window that straddles a state change (by the DAQ's clock) is not compared.
    paused = RunFacts(100200, "run", "physics", T0, None, T0 + timedelta(seconds=base + 52))
    assert check.on_tick(memory, paused, T0, NO_LETTERS) is None


def test_a_backlog_drained_after_an_outage_is_neither_a_drop_nor_a_burst() -> None:
    """STFs at 2/s by the DAQ's clock; fastmon hears the first 40 s as they are made, then
    nothing for 20 s, then the next 30 s at once."""
    check, memory = StfRateDrop(window_s=10, min_history=2), {}
    base = T0.timestamp() // 10 * 10 - T0.timestamp()
    check.on_stfs(memory, RUN, [stf(n, at=base + n * 0.5, daq=base + n * 0.5) for n in range(80)])
    for silent in (45, 55):  # while nothing arrives, no window closes
        now = T0 + timedelta(seconds=base + silent)
        assert check.on_tick(memory, RUN, now, NO_LETTERS).quality is Quality.GOOD
    check.on_stfs(memory, RUN, [stf(n, at=base + 60, daq=base + n * 0.5) for n in range(80, 140)])
    for after in (65, 75, 85):
        now = T0 + timedelta(seconds=base + after)
        judged = check.on_tick(memory, RUN, now, NO_LETTERS)
        assert judged.reason == "STF rate 2.00/s, usually 2.00/s", judged


def test_size_outliers_by_median_and_mad() -> None:
    check, memory = StfSizeOutlier(), {}
    usual = [stf(n, size=2_000_000 + (n % 7) * 1000) for n in range(1, 41)]
    assert check.on_stfs(memory, RUN, usual).quality is Quality.GOOD
    odd = check.on_stfs(memory, RUN, [stf(41, size=9_000_000)])
    assert odd.quality is Quality.MEDIUM and "swf.100200.000041.stf" in odd.reason
    assert check.on_stfs(memory, RUN, [stf(42, size=2_003_000)]).quality is Quality.GOOD
    assert len(memory["sizes"]) <= check.kept


def test_sample_latency_over_its_budget() -> None:
    check, memory = SampleLatency(budget_s=10), {}
    fast = [SampleSeen(f"s{n}", 0.5) for n in range(50)]
    assert check.on_samples(memory, RUN, fast).quality is Quality.GOOD
    slow = check.on_samples(memory, RUN, [SampleSeen(f"t{n}", 30.0) for n in range(50)])
    assert slow.quality is Quality.MEDIUM and "over the 10 s budget" in slow.reason


def test_dead_letters_piling_up_for_the_run_they_name() -> None:
    check = DeadLetterRate(max_count=3)
    named = {RUN.number: 4}
    many = Window(NO_LETTERS.dead_letters_since,
                  run_dead_letters_since=lambda run, since: named.get(run, 0))  # fmt: skip
    assert check.on_tick({}, RUN, T0, many).quality is Quality.BAD
    other = RunFacts(100201, "run", "physics", T0, None)
    assert check.on_tick({}, other, T0, many).quality is Quality.GOOD
    assert check.on_tick({}, RUN, T0, NO_LETTERS).quality is Quality.GOOD


def test_failing_slices_of_fast_processing() -> None:
    check = SliceFailures(min_results=5, max_failed=0.2)

    def results(done: int, failed: int) -> Window:
        counts = {"done": done, "failed": failed}
        return Window(NO_LETTERS.dead_letters_since, lambda run, since: counts)

    assert check.on_tick({}, RUN, T0, results(3, 1)) is None  # too few to judge
    assert check.on_tick({}, RUN, T0, results(9, 1)).quality is Quality.GOOD
    failing = check.on_tick({}, RUN, T0, results(6, 4))
    assert failing.quality is Quality.BAD and "4 of 10 slices failed" in failing.reason
