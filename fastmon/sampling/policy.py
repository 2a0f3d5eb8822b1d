"""Which STFs to sample, and which of their Time Frames: pure functions, no Django.

A policy has two halves:

- *conditions* on the STF, all of which must hold (AND, as in ALICE's Data Sampling): a
  per-STF rate decided by a hash, every n-th STF of a run, a payload size window; and an
  override that always samples the first STF of a run;
- a *selection* of TF ranges: the STF is cut into ``partitions`` contiguous, equal parts (the
  last takes the remainder) and from each one block of about ``fraction`` of its TFs is taken,
  its size scaled by a Gaussian factor (mean 1, sigma ``size_sigma``, at least 1 TF), at a
  random position. The testbed's algorithm is 7 partitions, 15 %, sigma 0.1; sigma 0 gives a
  fixed fraction;
- *caps*, so a mistyped rate cannot flood storage or the network: samples per STF (here, by
  ``spread``), and per run and minute and bytes read per minute (``fastmon.sampling.caps``,
  which keeps count over the database).

Every random draw comes from a generator seeded by a SHA-256 of (policy seed, run, STF name):
the same policy gives the same samples on any machine, in any process, at any time, so any
sample can be re-derived from the ledger (policy, version, seed) stored beside it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class TfRange:
    """One sampled range of an STF's Time Frames: ``tf_first..tf_last``, both included."""

    tf_first: int
    tf_last: int
    file_size_bytes: int | None = None
    checksum: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    size_estimated: bool = False

    @property
    def tf_count(self) -> int:
        return self.tf_last - self.tf_first + 1


@dataclass(frozen=True)
class StfFacts:
    """What a policy may look at."""

    stf_filename: str
    run_number: int | None
    sequence: int | None
    tf_count: int
    size_bytes: int | None = None
    first_of_run: bool = False


MAX_PARTITIONS = 1000
CAPS = ("max_samples_per_stf", "max_samples_per_run_minute", "max_read_bytes_per_minute")
MAX_SIZE_SIGMA = 10.0


@dataclass(frozen=True)
class Policy:
    """A sampling policy's parameters (``SamplingPolicy.params`` holds them as JSON)."""

    seed: int = 0
    # Conditions on the STF (AND), and the first-of-run override.
    stf_rate: float = 1.0
    every_nth_stf: int = 1
    min_size_bytes: int | None = None
    max_size_bytes: int | None = None
    always_first_of_run: bool = True
    # Selection of TF ranges within a sampled STF.
    partitions: int = 7
    fraction: float = 0.15
    size_sigma: float = 0.1
    # Caps (null: none); what they hold back is counted, per run and in the metrics.
    max_samples_per_stf: int | None = None
    max_samples_per_run_minute: int | None = None
    max_read_bytes_per_minute: int | None = None

    def __post_init__(self) -> None:
        # Under ``from __future__ import annotations`` a field's type is its annotation's text.
        annotations = {f.name: str(f.type) for f in fields(self)}
        problems = [
            f"{name} must be {_TYPE_WORDS[annotation]}"
            for name, annotation in annotations.items()
            if not _has_type(getattr(self, name), annotation)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        # Chained comparisons also refuse NaN. The upper bounds keep one STF's plan small
        # (partitions) and its arithmetic finite (size_sigma); the testbed uses 7 and 0.1.
        if not 0 <= self.stf_rate <= 1:
            problems.append("stf_rate must be between 0 and 1")
        if not 0 < self.fraction <= 1:
            problems.append("fraction must be above 0 and at most 1")
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            problems.append(f"partitions must be between 1 and {MAX_PARTITIONS}")
        if not 1 <= self.every_nth_stf <= 2**31 - 1:
            problems.append("every_nth_stf must be between 1 and 2^31-1")
        if not 0 <= self.size_sigma <= MAX_SIZE_SIGMA:
            problems.append(f"size_sigma must be between 0 and {MAX_SIZE_SIGMA}")
        if not 0 <= self.seed <= 2**63 - 1:
            problems.append("seed must be between 0 and 2^63-1")
        for cap in CAPS:
            if getattr(self, cap) is not None and not 1 <= getattr(self, cap) <= 2**63 - 1:
                problems.append(f"{cap} must be null or between 1 and 2^63-1")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Policy:
        """Build from JSON parameters; unknown keys are an error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"unknown policy parameters: {', '.join(sorted(unknown))}")
        return cls(**params)


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "int | None": "an integer or null",
}


def _has_type(value: Any, annotation: str) -> bool:
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation == "int | None" and value is None:
        return True
    return isinstance(value, int) and not isinstance(value, bool)


TESTBED = Policy()


def _generator(policy: Policy, purpose: str, stf: StfFacts) -> random.Random:
    digest = hashlib.sha256(
        f"{policy.seed}:{purpose}:{stf.run_number}:{stf.stf_filename}".encode()
    ).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def should_sample(policy: Policy, stf: StfFacts) -> bool:
    """Whether this STF is sampled at all."""
    if policy.always_first_of_run and stf.first_of_run:
        return True
    if stf.sequence is not None and stf.sequence % policy.every_nth_stf != 0:
        return False
    if stf.size_bytes is not None:
        if policy.min_size_bytes is not None and stf.size_bytes < policy.min_size_bytes:
            return False
        if policy.max_size_bytes is not None and stf.size_bytes > policy.max_size_bytes:
            return False
    return _generator(policy, "rate", stf).random() < policy.stf_rate


def select_ranges(policy: Policy, stf: StfFacts) -> list[TfRange]:
    """The TF ranges to sample: one block per partition, in increasing order."""
    rng = _generator(policy, "ranges", stf)
    count = stf.tf_count
    partitions = min(policy.partitions, count)
    width = count // partitions
    ranges = []
    for index in range(partitions):
        start = index * width
        end = count if index == partitions - 1 else start + width
        factor = rng.gauss(1.0, policy.size_sigma) if policy.size_sigma else 1.0
        size = min(end - start, max(1, round((end - start) * policy.fraction * factor)))
        first = rng.randint(start, end - size)
        ranges.append(TfRange(first, first + size - 1))
    return ranges


def sample(policy: Policy, stf: StfFacts) -> list[TfRange]:
    """The policy's decision for one STF, before its caps: no ranges when it is not sampled."""
    return select_ranges(policy, stf) if should_sample(policy, stf) else []


def spread(ranges: list[TfRange], most: int | None) -> list[TfRange]:
    """At most ``most`` of the ranges (None: all), taken evenly across the STF, so a capped
    sample still sees its beginning, middle and end."""
    if most is None or most >= len(ranges):
        return ranges
    if most <= 0:
        return []
    step = len(ranges) / most
    return [ranges[int((n + 0.5) * step)] for n in range(most)]
