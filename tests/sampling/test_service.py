"""sample_stfs against PostgreSQL: policies, the ledger, real and estimated sizes, idempotency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import LiveEvent, OutboxMessage, SamplingPolicy, StfFile, TfSample
from fastmon.sampling import service
from fastmon.sampling.ledger import current_policy, policy_of, save_policy_version
from fastmon.sampling.policy import StfFacts, select_ranges
from fastmon.sampling.reading import read_tf_ranges
from fastmon.sampling.service import sample_stfs
from fastmon.testing.announcing import announce
from fastmon.testing.messages import example, stf_name, tf_sample_name

pytestmark = pytest.mark.django_db

MIB = 1024**2
RUN, SIZE = 101993, 64 * MIB
# An STF announced without a file URL: sampling reads nothing of it.
UNREAD = {"file_url": "", "size_bytes": SIZE}


def write_stf(directory: Path, number: int, size: int = SIZE) -> Path:
    path = directory / stf_name(RUN, number)
    with path.open("wb") as f:
        f.write(bytes(range(256)) * 4096)  # some data that is not all zeros
        f.truncate(size)
    return path


@pytest.fixture
def data_root(tmp_path: Path):
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [str(tmp_path)]}):
        yield tmp_path


def test_a_reachable_stf_gets_real_sizes_and_checksums_and_a_ledger(data_root: Path) -> None:
    path = write_stf(data_root, 1)
    [name] = announce("stf_ready", RUN, 1, data_dir=data_root, size_bytes=SIZE)
    report = sample_stfs([name])

    stf = StfFile.objects.get()
    samples = list(TfSample.objects.order_by("tf_first"))
    assert (report.sampled, report.samples) == (1, 7)
    assert stf.status == StfFile.Status.SAMPLED and stf.sampled_at is not None
    assert [s.tf_filename for s in samples] == [tf_sample_name(RUN, 1, n) for n in range(1, 8)]
    assert all(not s.size_estimated and s.checksum.startswith("ad:") for s in samples)
    assert report.bytes_read == sum(s.file_size_bytes for s in samples)
    assert 0.10 < report.bytes_read / (64 * MIB) < 0.20
    assert samples[0].metadata == {"state": "run", "substate": "physics"}

    # The ledger re-derives every sample byte for byte: same ranges, same sizes, same Adler-32.
    policy = samples[0].policy
    assert (policy.name, policy.version, samples[0].seed) == ("testbed", 1, 0)
    ranges = select_ranges(policy_of(policy), StfFacts(name, 101993, 1, 1000))
    again, _ = read_tf_ranges(path, 1000, [(r.tf_first, r.tf_last) for r in ranges])
    assert [(s.tf_first, s.tf_last, s.file_size_bytes, s.checksum) for s in samples] == [
        (r.tf_first, r.tf_last, m.size_bytes, m.checksum)
        for r, m in zip(ranges, again, strict=True)
    ]


def test_each_sample_is_announced_through_the_outbox_and_in_a_live_event() -> None:
    sample_stfs(announce("stf_ready", RUN, 1, **UNREAD))
    assert OutboxMessage.objects.filter(msg_type="tf_file_registered").count() == 7
    [event] = LiveEvent.objects.filter(kind=LiveEvent.Kind.TF_SAMPLES)
    assert event.run_number == 101993
    assert event.payload["stf_filename"] == "swf.101993.000001.stf"
    assert [s["tf_filename"] for s in event.payload["samples"]] == [
        tf_sample_name(RUN, 1, n) for n in range(1, 8)
    ]
    first = json.loads(OutboxMessage.objects.order_by("id").first().body)
    assert first["tf_filename"] == "swf.101993.000001_tf_001.tf"


def test_an_unreachable_stf_gets_estimated_sizes_flagged_as_such() -> None:
    [name] = announce("stf_ready", RUN, 1, file_url="file:///nowhere/swf.101993.000001.stf",
                      size_bytes=1000 * MIB)  # fmt: skip
    sample_stfs([name])
    samples = TfSample.objects.all()
    assert all(s.size_estimated for s in samples)
    assert all(s.file_size_bytes == 1000 * MIB * s.tf_count // 1000 for s in samples)
    assert "no data roots" in samples[0].metadata["estimated_because"]


def test_sampling_twice_adds_nothing(data_root: Path) -> None:
    write_stf(data_root, 1)
    [name] = announce("stf_ready", RUN, 1, data_dir=data_root, size_bytes=SIZE)
    sample_stfs([name])
    before = list(TfSample.objects.values_list("tf_filename", "tf_file_id"))
    report = sample_stfs([name])
    assert report.sampled == report.samples == 0
    assert list(TfSample.objects.values_list("tf_filename", "tf_file_id")) == before
    assert OutboxMessage.objects.count() == 7


def test_an_announcement_redelivered_after_sampling_leaves_the_stf_sampled() -> None:
    [name] = announce("stf_ready", RUN, 1, **UNREAD)
    sample_stfs([name])
    announce("stf_ready", RUN, 1, **UNREAD)  # the same stf_ready again
    ingest_message(json.dumps(example("stf_gen")))  # and a late stf_gen
    stf = StfFile.objects.get()
    assert stf.status == StfFile.Status.SAMPLED
    assert sample_stfs([name]).samples == 0


def test_a_poison_stf_is_given_up_after_the_attempt_limit() -> None:
    [name] = announce("stf_ready", RUN, 1, **UNREAD)
    StfFile.objects.update(sampling_attempts=3)  # three workers died on it already
    report = sample_stfs([name])
    assert report.failed == 1 and report.samples == 0
    assert StfFile.objects.get().status == StfFile.Status.FAILED
    assert sample_stfs([name]).failed == 0  # and it stays given up


def test_a_new_policy_version_is_used_from_then_on_and_the_old_one_kept() -> None:
    sample_stfs(announce("stf_ready", RUN, 1, **UNREAD))
    v1 = SamplingPolicy.objects.get()
    v1.params = {"partitions": 3, "fraction": 0.05, "size_sigma": 0}
    v2 = save_policy_version(v1, created_by="shift-crew")
    assert (v2.name, v2.version, v2.created_by) == ("testbed", 2, "shift-crew")

    sample_stfs(announce("stf_ready", RUN, 2, **UNREAD))
    by_stf = {
        stf: sorted(TfSample.objects.filter(stf__stf_filename=stf).values_list(
            "policy__version", "tf_count"))
        for stf in ["swf.101993.000001.stf", "swf.101993.000002.stf"]
    }  # fmt: skip
    assert {v for v, _ in by_stf["swf.101993.000001.stf"]} == {1}
    assert by_stf["swf.101993.000002.stf"] == [(2, 17), (2, 17), (2, 17)]
    assert SamplingPolicy.objects.count() == 2


def test_the_most_specific_active_policy_is_chosen() -> None:
    generic = SamplingPolicy.objects.create(name="generic")
    mine = SamplingPolicy.objects.create(name="mine", namespace="epic-fastmon")
    SamplingPolicy.objects.create(name="cosmics", namespace="epic-fastmon", run_type="cosmics")
    assert current_policy("epic-fastmon", "physics") == mine
    assert current_policy("other", "physics") == generic
    assert current_policy("epic-fastmon", "cosmics").name == "cosmics"
    mine.active = False
    save_policy_version(mine)
    assert current_policy("epic-fastmon", "physics") == generic
    moved = SamplingPolicy.objects.get(name="cosmics")
    moved.namespace = "other"  # its new version no longer applies to epic-fastmon
    save_policy_version(moved)
    assert current_policy("epic-fastmon", "cosmics") == generic
    assert current_policy("other", "cosmics").version == 2


def test_an_stf_the_policy_does_not_choose_is_marked_skipped() -> None:
    SamplingPolicy.objects.create(name="none", params={"stf_rate": 0, "always_first_of_run": False})
    report = sample_stfs(announce("stf_ready", RUN, 1, **UNREAD))
    assert report.skipped == 1 and not TfSample.objects.exists()
    assert StfFile.objects.get().status == StfFile.Status.SKIPPED


def test_bad_policy_parameters_are_refused_when_saved() -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="unknown policy parameters: fractoin"):
        save_policy_version(SamplingPolicy(name="typo", params={"fractoin": 0.2}))


def test_an_stf_that_cannot_be_planned_does_not_fail_its_neighbours(monkeypatch) -> None:
    names = announce("stf_ready", RUN, 1, 2, 3, **UNREAD)
    plan = service.sample

    def overflows_on_the_second(policy, facts):
        if facts.stf_filename == names[1]:
            raise OverflowError("cannot convert float infinity to integer")
        return plan(policy, facts)

    monkeypatch.setattr("fastmon.sampling.service.sample", overflows_on_the_second)
    report = sample_stfs(names)
    assert (report.sampled, report.samples) == (2, 14)
    assert StfFile.objects.get(stf_filename=names[1]).status == "ready"  # tried again later


def test_an_stf_that_cannot_be_registered_does_not_fail_its_neighbours(monkeypatch) -> None:
    names = announce("stf_ready", RUN, 1, 2, 3, **UNREAD)
    register = service.record_tf_samples

    def fails_on_the_second(plans):
        if any(plan.stf.stf_filename == names[1] for plan in plans):
            raise RuntimeError("a bug")
        return register(plans)

    monkeypatch.setattr("fastmon.sampling.service.record_tf_samples", fails_on_the_second)
    report = sample_stfs(names)
    assert (report.sampled, report.samples) == (2, 14)
    assert dict(StfFile.objects.values_list("stf_filename", "status")) == {
        names[0]: "sampled", names[1]: "ready", names[2]: "sampled",
    }  # fmt: skip
    assert StfFile.objects.get(stf_filename=names[1]).sampling_attempts == 1  # tried again later
