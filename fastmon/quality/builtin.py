"""The checks fastmon ships. Each keeps a bounded memory of the run, so evaluating a batch costs
what the batch adds. Parameters are class attributes, overridable in ``FASTMON["CHECKS"]``."""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import islice

from fastmon.quality.framework import Check, RunFacts, SampleSeen, StfSeen, Window
from fastmon.quality.verdicts import Quality, Verdict, good

GAPS_KEPT = 10_000  # gaps remembered as ranges of sequence numbers (the count goes on)
SHOWN = 10  # numbers a reason lists


class StfSequence(Check):
    """STF sequence numbers: gaps (bad), duplicates (bad), late arrivals that fill a gap
    (medium) and numbers outside the run's plausible range (medium). A number is missing as
    soon as a later one arrives; it stops being missing if it turns up late. A number below
    ``first`` or over ``max_jump`` past the highest so far is implausible (a corrupt field
    makes no gap of two billion): counted and listed, and the run's range stays as it was."""

    first = 1  # the run's first sequence number
    max_missing = 0
    max_duplicates = 0
    max_jump = 100_000

    def on_stfs(self, memory: dict, run: RunFacts, stfs: Sequence[StfSeen]) -> Verdict | None:
        gaps: list[list[int]] = memory.get("gaps", [])  # [first, last] of each, in order
        last = memory.get("last", self.first - 1)
        keys = ("missing_total", "unkept", "duplicates", "late", "implausible")
        counts = {key: memory.get(key, 0) for key in keys}
        odd: list[int] = memory.get("odd", [])
        for stf in stfs:
            number = stf.sequence
            if stf.repeated:
                counts["duplicates"] += 1
            if not stf.new or number is None:
                continue
            if not self.first <= number <= last + self.max_jump:
                counts["implausible"] += 1
                odd = odd if len(odd) >= SHOWN else [*odd, number]
            elif number > last:
                if number > last + 1:
                    gaps.append([last + 1, number - 1])
                    counts["missing_total"] += number - last - 1
                last = number
            elif (filled := _fill(gaps, number)) or counts["unkept"]:
                # In a gap remembered, or perhaps in one that was not: late, not a duplicate.
                counts["unkept"] -= not filled
                counts["missing_total"] -= 1
                counts["late"] += 1
            else:
                counts["duplicates"] += 1
        while len(gaps) > GAPS_KEPT:  # the latest forgotten, their numbers still counted
            low, high = gaps.pop()
            counts["unkept"] += high - low + 1
        memory.update(counts, last=last, gaps=gaps, odd=odd)
        return self._verdict(memory)

    def on_end(self, memory: dict, run: RunFacts) -> Verdict | None:
        # Final: a gap the grace period held back is judged now.
        return self._verdict(memory) if "last" in memory else None

    def _verdict(self, memory: dict) -> Verdict:
        total, duplicates, late, odd = (
            memory[k] for k in ("missing_total", "duplicates", "late", "implausible")
        )
        numbers = (n for low, high in memory["gaps"] for n in range(low, high + 1))
        parts = [
            f"{total} missing ({_listed(list(islice(numbers, SHOWN)), total)})" if total else "",
            f"{duplicates} duplicated" if duplicates else "",
            f"{late} late" if late else "",
            f"{odd} implausible ({_listed(memory['odd'], odd)})" if odd else "",
        ]
        reason = "STF sequence: " + ("; ".join(p for p in parts if p) or "complete")
        if total > self.max_missing or duplicates > self.max_duplicates:
            return Verdict(Quality.BAD, reason)
        return Verdict(Quality.MEDIUM, reason) if late or odd else good(reason)


def _fill(gaps: list[list[int]], number: int) -> bool:
    """Take ``number`` out of the remembered gap that holds it; False if none does."""
    at = bisect.bisect_right(gaps, number, key=lambda gap: gap[0]) - 1
    if at < 0 or gaps[at][1] < number:
        return False
    low, high = gaps[at]
    gaps[at : at + 1] = [[a, b] for a, b in ((low, number - 1), (number + 1, high)) if a <= b]
    return True


def _listed(numbers: list[int], total: int) -> str:
    return ", ".join(map(str, numbers)) + (", ..." if total > len(numbers) else "")


class EndRunTotal(Check):
    """``end_run``'s STF total against the STFs fastmon saw."""

    def on_stfs(self, memory: dict, run: RunFacts, stfs: Sequence[StfSeen]) -> Verdict | None:
        memory["seen"] = memory.get("seen", 0) + sum(stf.new for stf in stfs)
        return None

    def on_end(self, memory: dict, run: RunFacts) -> Verdict | None:
        seen = memory.get("seen", 0)
        if run.total_stf_files is None:
            return Verdict(Quality.NULL, f"end_run gave no STF total; {seen} seen")
        if run.total_stf_files != seen:
            return self.says(f"end_run says {run.total_stf_files} STFs, {seen} seen")
        return good(f"end_run says {seen} STFs, all seen")


class StfAbsence(Check):
    """No STF for ``max_silence_s`` while running, counted from the last STF, the last state
    change or run_fastmon's last (re)connection to the broker, whichever is later. Held while
    it is not connected: fastmon hearing nothing says nothing of the DAQ (run_fastmon raises
    an alarm of its own for that)."""

    max_silence_s = 30.0

    def on_stfs(self, memory: dict, run: RunFacts, stfs: Sequence[StfSeen]) -> Verdict | None:
        latest = max(stf.at for stf in stfs).isoformat()
        memory["last_at"] = max(memory.get("last_at", latest), latest)
        return good("STFs arriving")

    def on_tick(self, memory: dict, run: RunFacts, now: datetime, window: Window) -> Verdict | None:
        if not window.connected:
            return None
        since = [datetime.fromisoformat(memory["last_at"])] if "last_at" in memory else []
        since += [at for at in (run.state_since, window.connected_since) if at]
        if not since:
            return None
        silence = (now - max(since)).total_seconds()
        if silence > self.max_silence_s:
            return self.says(f"no STF for {silence:.0f} s while running")
        return good("STFs arriving")


class StfRateDrop(Check):
    """The STF rate of the last complete window against the median of the run's own earlier
    windows (those with STFs): below ``drop_below`` of it is a drop. Windows are on the DAQ's
    clock (the STFs' own times), so a backlog drained after an outage fills the windows its
    STFs were made in rather than making a burst; a window is complete once an STF of a later
    one has arrived (no STF at all is StfAbsence's to judge)."""

    quality = Quality.MEDIUM
    window_s = 30.0
    history = 10  # earlier windows compared with
    min_history = 3
    drop_below = 0.5

    def on_stfs(self, memory: dict, run: RunFacts, stfs: Sequence[StfSeen]) -> Verdict | None:
        new = [self._window(stf.daq_at or stf.at) for stf in stfs if stf.new]
        if not new:
            return None
        bins = memory.setdefault("bins", {})
        for key in map(str, new):
            bins[key] = bins.get(key, 0) + 1
        # The latest to arrive: an odd time in one STF moves it for one batch only.
        current = memory["current"] = new[-1]
        kept = range(current - self.history - 2, current + self.history + 1)
        memory["bins"] = {key: n for key, n in bins.items() if int(key) in kept}
        return None

    def on_tick(self, memory: dict, run: RunFacts, now: datetime, window: Window) -> Verdict | None:
        if "current" not in memory:
            return None
        bins, last = memory["bins"], memory["current"] - 1  # the last complete window
        changed = run.state_changed_at
        if changed and self._window(changed) >= last:
            return None  # the window straddles a state change: not comparable
        earlier = [bins[str(k)] for k in range(last - self.history, last) if str(k) in bins]
        if len(earlier) < self.min_history:
            return None
        usual, now_count = statistics.median(earlier), bins.get(str(last), 0)
        rate = f"{now_count / self.window_s:.2f}/s, usually {usual / self.window_s:.2f}/s"
        if now_count < self.drop_below * usual:
            return self.says(f"STF rate dropped: {rate}")
        return good(f"STF rate {rate}")

    def _window(self, at: datetime) -> int:
        return int(at.timestamp() // self.window_s)


class StfSizeOutlier(Check):
    """STF sizes far from the run's recent ones, by median and MAD (robust to the outliers
    themselves): over ``max_deviations`` scaled MADs, or ``min_relative`` of the median when
    the sizes barely vary."""

    quality = Quality.MEDIUM
    max_deviations = 6.0
    min_relative = 0.05
    kept = 200  # recent sizes remembered
    min_count = 20

    def on_stfs(self, memory: dict, run: RunFacts, stfs: Sequence[StfSeen]) -> Verdict | None:
        sizes: list[int] = memory.get("sizes", [])
        # Each STF's first size, as (file name, size).
        new = [(stf.filename, stf.size_bytes) for stf in stfs if stf.size_bytes is not None]
        odd = []
        if len(sizes) >= self.min_count:  # judged against the sizes before the batch: one
            median = statistics.median(sizes)  # median and MAD per batch, not per STF
            spread = statistics.median(abs(s - median) for s in sizes) * 1.4826
            allowed = max(self.max_deviations * spread, self.min_relative * median)
            odd = [
                f"{filename} {size:,} B (usually {median:,.0f} B)"
                for filename, size in new
                if abs(size - median) > allowed
            ]
        sizes.extend(size for _, size in new)
        memory["sizes"] = sizes[-self.kept :]
        if odd:
            return self.says(f"STF size outlier: {'; '.join(odd[:3])}")
        return good("STF sizes as usual") if len(sizes) >= self.min_count else None


class SampleLatency(Check):
    """STF announcement to TF sample: the p95 of the recent samples over ``budget_s``."""

    quality = Quality.MEDIUM
    budget_s = 10.0  # the testbed's goal: statistics within O(10 s)
    kept = 100

    def on_samples(
        self, memory: dict, run: RunFacts, samples: Sequence[SampleSeen]
    ) -> Verdict | None:
        recent = memory.get("latencies", []) + [
            round(s.latency_s, 3) for s in samples if s.latency_s is not None
        ]
        memory["latencies"] = recent = recent[-self.kept :]
        if not recent:
            return None
        p95 = statistics.quantiles(recent + recent[-1:], n=20, method="inclusive")[-1]
        if p95 > self.budget_s:
            budget = f"over the {self.budget_s:g} s budget"
            return self.says(f"STF to TF sample p95 {p95:.1f} s, {budget}")
        return good(f"STF to TF sample p95 {p95:.1f} s")


class TfChecksum(Check):
    """TF sample checksums against the same range read a second time, or against what the
    TFs' announced checksums make of the range: bytes that are not what was written. Bad for
    the rest of the run once over ``max_disagreements``."""

    max_disagreements = 0

    def on_samples(
        self, memory: dict, run: RunFacts, samples: Sequence[SampleSeen]
    ) -> Verdict | None:
        compared = [s for s in samples if s.compared_with]
        if not compared and not memory.get("compared"):
            return None
        wrong = [s.tf_filename for s in compared if set(s.compared_with) != {s.checksum}]
        memory["compared"] = memory.get("compared", 0) + len(compared)
        memory["disagreements"] = memory.get("disagreements", 0) + len(wrong)
        if wrong:
            memory["last"] = wrong[-1]
        if memory["disagreements"] > self.max_disagreements:
            return self.says(
                f"{memory['disagreements']} of {memory['compared']} TF sample checksums "
                f"disagree (last {memory['last']})"
            )
        return good(f"{memory['compared']} TF sample checksums agree")


class SliceFailures(Check):
    """Fast processing: the share of a run's slice results in the last ``window_s`` that
    failed, once there are ``min_results`` of them."""

    window_s = 60.0
    min_results = 5
    max_failed = 0.2

    def on_tick(self, memory: dict, run: RunFacts, now: datetime, window: Window) -> Verdict | None:
        results = window.slice_results_since(run.number, now - timedelta(seconds=self.window_s))
        done, failed = results.get("done", 0), results.get("failed", 0)
        if done + failed < self.min_results:
            return None
        share = f"{failed} of {done + failed} slices failed in the last {self.window_s:g} s"
        return self.says(share) if failed / (done + failed) > self.max_failed else good(share)


class DeadLetterRate(Check):
    """Dead letters (unusable messages) in the last ``window_s``: over ``max_count`` says the
    stream is damaged. A letter whose body names a run (``run_id``, or an STF file name)
    counts for that run alone; one that names none, for every running run."""

    window_s = 60.0
    max_count = 10

    def on_tick(self, memory: dict, run: RunFacts, now: datetime, window: Window) -> Verdict | None:
        since = now - timedelta(seconds=self.window_s)
        count = window.run_dead_letters_since(run.number, since)
        if count > self.max_count:
            return self.says(f"{count} dead letters in the last {self.window_s:g} s")
        return good(f"{count} dead letters in the last {self.window_s:g} s")
