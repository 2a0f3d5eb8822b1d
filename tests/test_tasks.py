"""Sampling in a real Celery worker process, with Redis as its broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastmon.models import StfFile, TfSample
from fastmon.services import InboundMessage, ingest_batch
from fastmon.tasks import sample_stfs
from fastmon.testing.messages import example
from tests.celery import app
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = ["-m", "celery", "-A", "tests", "worker", "--loglevel", "info", "--concurrency", "1",
          "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
GIB = 1024**3


@pytest.fixture
def worker_queue(redis_url: str) -> None:
    """No task left over from another test reaches this test's worker."""
    app.control.purge()


def announce(directory: Path, numbers: range, size: int) -> list[str]:
    messages = []
    for number in numbers:
        path = directory / f"swf.101993.{number:06d}.stf"
        with path.open("wb") as f:
            f.truncate(size)
        body = example("stf_ready", filename=path.name, sequence=number,
                       file_url=f"file://{path}", size_bytes=size)  # fmt: skip
        messages.append(InboundMessage(json.dumps(body)))
    ingest_batch(messages)  # the commit enqueues the sampling
    return [m for m in (json.loads(i.body)["filename"] for i in messages)]


def test_the_commit_enqueues_sampling_and_a_worker_samples_each_stf_once(
    worker_queue, start_consumer, tmp_path: Path
) -> None:
    worker = start_consumer({"DATA_ROOTS": [str(tmp_path)]}, command="celery", argv=WORKER)
    names = announce(tmp_path, range(1, 6), 64 * 1024**2)

    wait_until(lambda: StfFile.objects.filter(status=StfFile.Status.SAMPLED).count() == 5,
               60, "five STFs sampled by the worker")  # fmt: skip
    assert TfSample.objects.count() == 35
    assert not TfSample.objects.filter(size_estimated=True).exists()

    sample_stfs.delay(names)  # again: adds nothing
    worker.wait_for_log("succeeded", count=2)
    assert TfSample.objects.count() == 35
    assert set(StfFile.objects.values_list("sampling_attempts", flat=True)) == {1}


def test_a_task_whose_worker_is_killed_is_done_by_the_next_worker(
    worker_queue, start_consumer, tmp_path: Path
) -> None:
    settings = {"DATA_ROOTS": [str(tmp_path)], "SAMPLING_TASK_CHUNK": 50}
    first = start_consumer(settings, command="celery", argv=WORKER)
    first.wait_for_log("ready.")
    announce(tmp_path, range(1, 13), 2 * GIB)  # one task, ~3.6 GB of sampled ranges to read

    wait_until(lambda: StfFile.objects.filter(sampling_attempts=1).exists(), 30,
               "the worker to start on the task")  # fmt: skip
    first.kill_all()
    assert not TfSample.objects.exists()  # it died inside the transaction

    second = start_consumer(settings, command="celery", argv=WORKER)
    wait_until(lambda: StfFile.objects.filter(status=StfFile.Status.SAMPLED).count() == 12,
               120, "every STF sampled after the redelivery")  # fmt: skip
    assert TfSample.objects.count() == 84
    assert set(StfFile.objects.values_list("sampling_attempts", flat=True)) == {2}
    second.kill_all()
