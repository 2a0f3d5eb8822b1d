"""A sampling policy's caps, through the pipeline (announced, sampled, stored in PostgreSQL):
samples per STF, per run and minute, and bytes read per minute stay under their caps whatever
the rate says, and what a cap holds back is counted per run (its statistics, the API) and in
the metrics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client import REGISTRY

from fastmon.models import Run, SamplingPolicy, StfFile, TfSample
from fastmon.sampling.ledger import save_policy_version
from fastmon.sampling.policy import Policy, TfRange, spread
from fastmon.sampling.service import sample_stfs
from fastmon.statistics.counters import recount
from fastmon.statistics.read import run_statistics
from fastmon.testing.announcing import announce
from fastmon.testing.sampling import RUN as BROKER_RUN
from fastmon.testing.sampling import ThroughBroker
from fastmon.testing.waiting import wait_until

RUN = 101993
UNREAD = {"file_url": "", "size_bytes": 64 * 1024**2}  # metadata-only samples: nothing read
Capture = Callable[..., object]


def held_back_metric(cap: str) -> float:
    return REGISTRY.get_sample_value("fastmon_samples_held_back_total", {"cap": cap}) or 0.0


def held_back(run: int = RUN) -> dict[str, int]:
    return run_statistics(Run.objects.get(run_number=run))["tf_samples_held_back"]


def policy(**params: object) -> SamplingPolicy:
    return save_policy_version(SamplingPolicy(name="capped", params=params))


def test_spread_keeps_ranges_across_the_whole_stf() -> None:
    ranges = [TfRange(n * 10, n * 10 + 1) for n in range(50)]
    kept = spread(ranges, 5)
    assert [r.tf_first for r in kept] == [50, 150, 250, 350, 450]
    assert spread(ranges, None) == spread(ranges, 50) == ranges
    assert spread(ranges, 0) == []


@pytest.mark.parametrize("value", [0, -1, 2**63, 1.5, True, "10"])
def test_a_cap_is_null_or_a_positive_integer(value: object) -> None:
    with pytest.raises(ValueError, match="max_samples_per_stf must be"):
        Policy.from_params({"max_samples_per_stf": value})
    assert Policy.from_params({"max_read_bytes_per_minute": None}).max_read_bytes_per_minute is None


@pytest.mark.django_db
def test_a_cap_is_checked_where_policies_are_saved() -> None:
    with pytest.raises(ValidationError, match="max_samples_per_run_minute must be null or"):
        policy(max_samples_per_run_minute=0)


@pytest.mark.django_db
def test_samples_per_stf_are_capped_and_what_is_held_back_counted(
    django_capture_on_commit_callbacks: Capture, client: Client
) -> None:
    policy(partitions=50, fraction=0.01, size_sigma=0, max_samples_per_stf=5)
    before = held_back_metric("max_samples_per_stf")
    with django_capture_on_commit_callbacks(execute=True):  # the metric counts once committed
        report = sample_stfs(announce("stf_ready", RUN, 1, 2, **UNREAD))

    assert (report.sampled, report.samples, report.held_back) == (2, 10, 90)
    firsts = sorted(TfSample.objects.filter(stf__sequence=1).values_list("tf_first", flat=True))
    assert firsts[0] < 200 and firsts[-1] >= 800  # across the STF, not its first tenth
    assert held_back() == {"max_samples_per_stf": 90}
    statistics = client.get(f"/fastmon/api/runs/{RUN}/statistics/").json()
    assert statistics["tf_samples_held_back"] == {"max_samples_per_stf": 90}
    assert held_back_metric("max_samples_per_stf") - before == 90
    # Not in the samples, so a recount from them keeps it.
    recount([Run.objects.get(run_number=RUN).pk])
    assert held_back() == {"max_samples_per_stf": 90}


@pytest.mark.django_db
def test_samples_per_run_minute_are_capped_across_rounds() -> None:
    policy(max_samples_per_run_minute=10)  # 7 samples an STF
    report = sample_stfs(announce("stf_ready", RUN, 1, 2, 3, **UNREAD))
    assert (report.samples, report.held_back) == (10, 11)
    statuses = dict(StfFile.objects.values_list("sequence", "status"))
    assert statuses == {1: "sampled", 2: "sampled", 3: "skipped"}  # 7, 3 of 7, none

    # Another round (another worker) sees the minute the database holds.
    assert sample_stfs(announce("stf_ready", RUN, 4, **UNREAD)).samples == 0
    assert held_back() == {"max_samples_per_run_minute": 18}
    # A minute on, the run may take samples again; other runs never counted against it.
    TfSample.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    assert sample_stfs(announce("stf_ready", RUN, 5, **UNREAD)).samples == 7
    assert sample_stfs(announce("stf_ready", RUN + 1, 1, **UNREAD)).samples == 7


@pytest.mark.django_db
def test_bytes_read_per_minute_are_capped_by_policy(tmp_path: Path) -> None:
    for sequence in (1, 2, 3):
        (tmp_path / f"swf.{RUN}.{sequence:06d}.stf").write_bytes(bytes(range(256)) * 4096)
    policy(max_read_bytes_per_minute=1)  # the first read spends it
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [str(tmp_path)]}):
        report = sample_stfs(announce("stf_ready", RUN, 1, 2, data_dir=tmp_path, tf_count=100))
        assert report.bytes_read > 0 and (report.sampled, report.held_back) == (1, 7)
        # The next round finds the bytes the first one read in the database.
        again = sample_stfs(announce("stf_ready", RUN, 3, data_dir=tmp_path, tf_count=100))
    assert (again.sampled, again.held_back) == (0, 7)
    assert StfFile.objects.get(sequence=1).bytes_read == report.bytes_read
    assert held_back() == {"max_read_bytes_per_minute": 14}


@pytest.mark.django_db(transaction=True)
def test_run_fastmon_holds_a_burst_to_the_run_minute_cap(
    through_broker: ThroughBroker, tmp_path: Path
) -> None:
    """A burst announced through the broker and sampled by run_fastmon's own sampler: the run
    gets its cap's worth of samples in the minute, the rest is counted as held back."""
    save_policy_version(SamplingPolicy(name="capped", params={"max_samples_per_run_minute": 10}))
    through_broker.start([str(tmp_path)])
    through_broker.publish(through_broker.stf(tmp_path, n, f"{tmp_path.as_uri()}/")
                           for n in range(1, 6))  # fmt: skip
    through_broker.wait_sampled(5, 60)
    assert TfSample.objects.count() == 10
    wait_until(lambda: held_back(BROKER_RUN) == {"max_samples_per_run_minute": 25}, 10,
               "the held-back samples counted")  # fmt: skip
