"""Sampling policies: pure logic, checked by properties (hypothesis)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmon.sampling.policy import TESTBED, Policy, StfFacts, sample, select_ranges, should_sample
from fastmon.sampling.samples import tf_sample_filename
from fastmon.testing.messages import stf_name

stf_names = st.builds(stf_name, st.integers(100010, 999999), st.integers(1, 99999))
policies = st.builds(
    Policy,
    seed=st.integers(0, 2**32),
    partitions=st.integers(1, 12),
    fraction=st.floats(0.01, 1.0),
    size_sigma=st.floats(0, 0.5),
)


def facts(name: str = "swf.101993.000001.stf", tf_count: int = 1000, **more) -> StfFacts:
    values = {"run_number": 101993, "sequence": 1, **more}
    return StfFacts(stf_filename=name, tf_count=tf_count, **values)


@given(policy=policies, name=stf_names, tf_count=st.integers(1, 5000))
def test_ranges_lie_inside_the_stf_in_order_without_overlap(policy, name, tf_count) -> None:
    ranges = select_ranges(policy, facts(name, tf_count))
    assert 1 <= len(ranges) <= policy.partitions
    for tf_range in ranges:
        assert 0 <= tf_range.tf_first <= tf_range.tf_last < tf_count
        assert tf_range.tf_count >= 1
    for before, after in itertools.pairwise(ranges):
        assert before.tf_last < after.tf_first


@given(name=stf_names, count=st.integers(1, 999))
def test_sample_names_follow_the_testbed(name, count) -> None:
    tf_name = tf_sample_filename(name, count)
    assert tf_name == f"{name.removesuffix('.stf')}_tf_{count:03d}.tf"


def test_the_testbed_policy_takes_seven_blocks_of_about_15_percent() -> None:
    ranges = select_ranges(TESTBED, facts())
    assert len(ranges) == 7
    for index, tf_range in enumerate(ranges):
        start, end = index * 142, (1000 if index == 6 else (index + 1) * 142)
        assert start <= tf_range.tf_first and tf_range.tf_last < end
        assert 10 <= tf_range.tf_count <= 35  # 15 % of 142, times a factor near 1


@settings(max_examples=20, deadline=None)
@given(fraction=st.floats(0.05, 0.5), seed=st.integers(0, 2**32))
def test_the_achieved_fraction_converges_on_the_target(fraction, seed) -> None:
    policy = Policy(seed=seed, fraction=fraction)
    sampled = sum(
        r.tf_count for n in range(1, 301) for r in select_ranges(policy, facts(
            stf_name(101993, n), 1400))
    )  # fmt: skip
    assert sampled / (300 * 1400) == pytest.approx(fraction, rel=0.05)


def test_the_same_seed_run_and_stf_give_the_same_samples_in_another_process() -> None:
    here = [(r.tf_first, r.tf_last) for r in select_ranges(TESTBED, facts())]
    code = (
        "import json; from fastmon.sampling.policy import TESTBED, StfFacts, select_ranges; "
        "r = select_ranges(TESTBED, StfFacts('swf.101993.000001.stf', 101993, 1, 1000)); "
        "print(json.dumps([(x.tf_first, x.tf_last) for x in r]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert json.loads(there) == [list(pair) for pair in here]
    assert select_ranges(Policy(seed=1), facts()) != select_ranges(TESTBED, facts())


def test_the_per_stf_rate_is_decided_by_hash_and_converges() -> None:
    policy = Policy(stf_rate=0.25, always_first_of_run=False)
    decisions = [should_sample(policy, facts(stf_name(1, n), sequence=n))
                 for n in range(1, 4001)]  # fmt: skip
    assert sum(decisions) / 4000 == pytest.approx(0.25, abs=0.03)
    again = [should_sample(policy, facts(stf_name(1, n), sequence=n))
             for n in range(1, 4001)]  # fmt: skip
    assert decisions == again


def test_conditions_combine_with_and_and_the_first_stf_of_a_run_is_always_taken() -> None:
    policy = Policy(every_nth_stf=5, min_size_bytes=100, max_size_bytes=1000,
                    always_first_of_run=True)  # fmt: skip
    assert should_sample(policy, facts(sequence=10, size_bytes=500))
    assert not should_sample(policy, facts(sequence=11, size_bytes=500))  # not every 5th
    assert not should_sample(policy, facts(sequence=10, size_bytes=5000))  # too large
    assert not should_sample(policy, facts(sequence=10, size_bytes=50))  # too small
    assert should_sample(policy, facts(sequence=11, size_bytes=5000, first_of_run=True))
    never = Policy(stf_rate=0.0, always_first_of_run=False)
    assert sample(never, facts()) == []


def test_fixed_fraction_policy_without_gaussian_takes_exact_blocks() -> None:
    policy = Policy(partitions=4, fraction=0.1, size_sigma=0)
    assert [r.tf_count for r in select_ranges(policy, facts(tf_count=1000))] == [25, 25, 25, 25]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"fraction": 0}, "fraction"),
        ({"stf_rate": 2}, "stf_rate"),
        ({"partitons": 3}, "unknown"),
        ({"partitions": 7.5}, "partitions must be an integer"),
        ({"min_size_bytes": "10"}, "min_size_bytes must be an integer or null"),
        ({"always_first_of_run": 1}, "always_first_of_run must be true or false"),
        ({"size_sigma": 1e308}, "size_sigma must be between 0 and 10"),
        ({"size_sigma": float("nan")}, "size_sigma must be between"),
        ({"partitions": 10**8}, "partitions must be between 1 and 1000"),
        ({"every_nth_stf": 0}, "every_nth_stf must be between"),
        ({"seed": -1}, "seed must be between"),
        ({"seed": 10**5000}, "seed must be between"),
    ],
)
def test_bad_parameters_are_refused_with_a_reason(params: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Policy.from_params(params)
