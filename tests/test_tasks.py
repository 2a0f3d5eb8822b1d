"""Sampling in a real Celery worker process, with Redis as its broker."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from fastmon.inbound.messages import InboundMessage
from fastmon.ingest.pipeline import ingest_batch
from fastmon.models import OutboxMessage, StfFile, Subscriber, TfSample
from fastmon.tasks import periodic_checks, relay_outbox_task, sample_stfs
from fastmon.testing.announcing import announce
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import example, stf_name
from fastmon.testing.waiting import wait_until
from tests.celery import app

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = ["-m", "celery", "-A", "tests", "worker", "--loglevel", "info", "--concurrency", "1",
          "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
GIB = 1024**3
RUN = 101993


@pytest.fixture
def worker_queue(redis_url: str) -> None:
    """No task left over from another test reaches this test's worker."""
    app.control.purge()


def announce_sparse(directory: Path, numbers: range, size: int) -> list[str]:
    """STF files of ``size`` (sparse: nothing on disk) announced ready in one batch, whose
    commit enqueues their sampling."""
    for number in numbers:
        with (directory / stf_name(RUN, number)).open("wb") as f:
            f.truncate(size)
    return announce("stf_ready", RUN, *numbers, data_dir=directory, size_bytes=size,
                    together=True)  # fmt: skip


def test_the_commit_enqueues_sampling_and_a_worker_samples_each_stf_once(
    worker_queue, start_process, tmp_path: Path
) -> None:
    worker = start_process({"DATA_ROOTS": [str(tmp_path)]}, command="celery", argv=WORKER)
    names = announce_sparse(tmp_path, range(1, 6), 64 * 1024**2)

    wait_until(lambda: StfFile.objects.filter(status=StfFile.Status.SAMPLED).count() == 5,
               60, "five STFs sampled by the worker")  # fmt: skip
    assert TfSample.objects.count() == 35
    assert not TfSample.objects.filter(size_estimated=True).exists()

    sample_stfs.delay(names)  # again: adds nothing
    worker.wait_for_log("succeeded", count=2)
    assert TfSample.objects.count() == 35
    assert set(StfFile.objects.values_list("sampling_attempts", flat=True)) == {1}


def test_a_task_whose_worker_is_killed_is_done_by_the_next_worker(
    worker_queue, start_process, tmp_path: Path
) -> None:
    settings = {"DATA_ROOTS": [str(tmp_path)], "SAMPLING_TASK_CHUNK": 50}
    first = start_process(settings, command="celery", argv=WORKER)
    first.wait_for_log("ready.")
    announce_sparse(tmp_path, range(1, 13), 2 * GIB)  # one task, ~3.6 GB of sampled ranges to read

    wait_until(lambda: StfFile.objects.filter(sampling_attempts=1).exists(), 30,
               "the worker to start on the task")  # fmt: skip
    first.kill_all()
    assert not TfSample.objects.exists()  # it died inside the transaction

    second = start_process(settings, command="celery", argv=WORKER)
    wait_until(lambda: StfFile.objects.filter(status=StfFile.Status.SAMPLED).count() == 12,
               120, "every STF sampled after the redelivery")  # fmt: skip
    assert TfSample.objects.count() == 84
    assert set(StfFile.objects.values_list("sampling_attempts", flat=True)) == {2}
    second.kill_all()


@pytest.fixture
def eager():
    """Tasks run where they are enqueued, for tests of what enqueues them."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_the_periodic_checks_resample_stfs_left_unsampled(eager) -> None:
    from django.test import override_settings

    with override_settings(FASTMON={**django_settings.FASTMON, "SAMPLING_ENABLED": False}):
        ingest_batch([InboundMessage(json.dumps(example("stf_ready")))])  # enqueue "lost"
    assert StfFile.objects.get().status == StfFile.Status.READY

    with override_settings(FASTMON={**django_settings.FASTMON, "SAMPLING_SWEEP_AFTER_S": 0}):
        assert periodic_checks.delay().get()["enqueued_for_sampling"] == 1
    assert StfFile.objects.get().status == StfFile.Status.SAMPLED
    assert TfSample.objects.count() == 7


def test_the_periodic_checks_lapse_leases_and_prune_the_outbox(eager) -> None:
    long_ago = timezone.now() - timedelta(days=8)
    Subscriber.objects.create(name="gone", destination="/queue/fastmon.gone", expires_at=long_ago)
    Subscriber.objects.create(name="here", destination="/queue/fastmon.here")
    OutboxMessage.objects.bulk_create([
        OutboxMessage(destination="/topic/t", body="{}", sent_at=long_ago),  # pruned
        OutboxMessage(destination="/topic/t", body="{}", failed_at=long_ago),  # pruned
        OutboxMessage(destination="/topic/t", body="{}", sent_at=timezone.now()),  # kept
        OutboxMessage(destination="/topic/t", body="{}"),  # pending: kept
    ])  # fmt: skip
    assert periodic_checks.delay().get() == {
        "enqueued_for_sampling": 0, "subscribers_lapsed": 1, "outbox_rows_pruned": 2,
    }  # fmt: skip
    assert OutboxMessage.objects.count() == 2
    assert list(Subscriber.objects.filter(active=True).values_list("name", flat=True)) == ["here"]


def test_the_relay_task_publishes_the_outbox(eager, stomp_address, unique_topic) -> None:
    OutboxMessage.objects.create(destination=unique_topic, body='{"msg_type": "x"}')
    with subscribed(stomp_address, broker_login(), unique_topic) as (_, collector):
        assert relay_outbox_task.delay().get() == 1
        assert collector.json_bodies(1) == [{"msg_type": "x"}]
    assert OutboxMessage.objects.get().sent_at is not None
