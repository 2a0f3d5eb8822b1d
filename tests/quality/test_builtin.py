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


def stf(n: int, at: float = 0.0, size: int | None = 2_000_000, new: bool = True, **kw) -> StfSeen:
    return StfSeen(stf_name(100200, n), n, size, T0 + timedelta(seconds=at), new, **kw)


def test_a_gap_is_bad_until_the_missing_stf_turns_up_late() -> None:
    check, memory = StfSequence(), {}
    assert check.on_stfs(memory, RUN, [stf(1), stf(2)]).quality is Quality.GOOD
    gap = check.on_stfs(memory, RUN, [stf(5)])
    assert gap.quality is Quality.BAD and "2 missing (3, 4)" in gap.reason
    assert check.on_stfs(memory, RUN, [stf(3), stf(4)]).quality is Quality.MEDIUM  # late
    assert memory["missing_total"] == 0 and memory["late"] == 2


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
    check, memory = StfRateDrop(window_s=10, min_history=3), {}
    check.on_stfs(memory, RUN, [stf(n, at=n * 0.5) for n in range(1, 81)])  # 2/s for 40 s
    check.on_stfs(memory, RUN, [stf(100 + n, at=40 + n * 5) for n in range(2)])  # 0.2/s
    start = T0.timestamp() // 10 * 10
    at = datetime.fromtimestamp(start + 55, tz=UTC)
    dropped = check.on_tick(memory, RUN, at, NO_LETTERS)
    assert dropped.quality is Quality.MEDIUM and "dropped" in dropped.reason
    check.on_stfs(memory, RUN, [stf(200 + n, at=50 + n * 0.5) for n in range(20)])
    back = datetime.fromtimestamp(start + 65, tz=UTC)
    assert check.on_tick(memory, RUN, back, NO_LETTERS).quality is Quality.GOOD


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


def test_dead_letters_piling_up() -> None:
    check = DeadLetterRate(max_count=3)
    many = Window(dead_letters_since=lambda since: 4)
    assert check.on_tick({}, RUN, T0, many).quality is Quality.BAD
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
