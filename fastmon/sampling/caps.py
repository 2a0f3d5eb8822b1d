"""A sampling policy's caps, so that a mistyped rate (the policy's, or a workflow's
``stf_sampling_rate``) cannot flood storage or the network: at most ``max_samples_per_stf``
samples of an STF, ``max_samples_per_run_minute`` of a run in any 60 s, and
``max_read_bytes_per_minute`` bytes read in any 60 s under the policy (all its versions).

The last minute is the database's (what every worker committed) plus what this round of
sampling took since: concurrent workers may together go past a cap by what their rounds in
flight take, and a read by at most one STF's. An STF a cap holds back whole is skipped (never
sampled later: sampling follows the data as it comes). What the caps hold back is counted, in
samples: per run (``held_back:<cap>`` counters, in the run's statistics) and in the metric
``fastmon_samples_held_back``.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from fastmon import metrics
from fastmon.models import SamplingPolicy, StfFile, TfSample
from fastmon.sampling.policy import CAPS, Policy, TfRange, spread
from fastmon.statistics import counters

PER_STF, PER_RUN_MINUTE, READ_BYTES_PER_MINUTE = CAPS
WINDOW = timedelta(minutes=1)
# What the caps held back of each STF, by its pk: (its run's id, samples by cap).
HeldBack = dict[int, tuple[int | None, Counter[str]]]


class Caps:
    """One round of sampling's view of the caps, and what they held back in it, by STF."""

    def __init__(self) -> None:
        self._run_samples: dict[int, int] = {}  # by run id: samples of the last minute
        self._policy_bytes: dict[str, int] = {}  # by policy name: bytes read in the last minute
        self.held_back: HeldBack = {}

    def apply(
        self, row: SamplingPolicy, policy: Policy, stf: StfFile, ranges: list[TfRange]
    ) -> list[TfRange]:
        """The ranges the caps let through (none: the STF is held back whole); counted as
        taken from the run's minute."""
        kept = spread(ranges, policy.max_samples_per_stf)
        self._hold(stf, PER_STF, len(ranges) - len(kept))
        run_cap = policy.max_samples_per_run_minute
        if run_cap is not None and stf.run_id is not None:
            room = max(0, run_cap - self._samples_of(stf.run_id))
            kept, wanted = spread(kept, room), len(kept)
            self._hold(stf, PER_RUN_MINUTE, wanted - len(kept))
        byte_cap = policy.max_read_bytes_per_minute
        if kept and byte_cap is not None and self._bytes_of(row.name) >= byte_cap:
            self._hold(stf, READ_BYTES_PER_MINUTE, len(kept))
            kept = []
        if stf.run_id is not None and stf.run_id in self._run_samples:
            self._run_samples[stf.run_id] += len(kept)
        return kept

    def read(self, row: SamplingPolicy, bytes_read: int) -> None:
        """Bytes just read under this policy."""
        if row.name in self._policy_bytes:
            self._policy_bytes[row.name] += bytes_read

    def _hold(self, stf: StfFile, cap: str, samples: int) -> None:
        if samples > 0:
            self.held_back.setdefault(stf.pk, (stf.run_id, Counter()))[1][cap] += samples

    def _samples_of(self, run_id: int) -> int:
        if run_id not in self._run_samples:
            since = timezone.now() - WINDOW
            recent = TfSample.objects.filter(run_id=run_id, created_at__gte=since)
            self._run_samples[run_id] = recent.count()
        return self._run_samples[run_id]

    def _bytes_of(self, name: str) -> int:
        if name not in self._policy_bytes:
            since = timezone.now() - WINDOW
            chosen = TfSample.objects.filter(policy__name=name, created_at__gte=since)
            read = StfFile.objects.filter(pk__in=chosen.values("stf_id"), sampled_at__gte=since)
            self._policy_bytes[name] = read.aggregate(n=Sum("bytes_read"))["n"] or 0
        return self._policy_bytes[name]


def count_held_back(held_back: HeldBack) -> None:
    """What the caps held back of these STFs: added to their runs' counters in the caller's
    transaction, and to the metric once it commits."""
    if not held_back:
        return
    deltas, by_cap = counters.Deltas(), Counter[str]()
    for run_id, held in held_back.values():
        by_cap.update(held)
        for cap, samples in held.items():
            if run_id is not None:
                deltas[run_id, counters.HELD_BACK + cap] += samples
    counters.add(deltas)

    def count_in_metric() -> None:
        for cap, samples in by_cap.items():
            metrics.SAMPLES_HELD_BACK.labels(cap).inc(samples)

    transaction.on_commit(count_in_metric)
