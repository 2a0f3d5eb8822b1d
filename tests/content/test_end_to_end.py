"""Content, done when (the issue): a run of ETF1 STFs through the broker, sampled by two Celery
workers one of which is SIGKILLed mid-run, by run_fastmon's own sampler, and over root:// and
HTTP; for every detector, the served occupancy equals, bin for bin, an independent decode of
exactly the sampled TF ranges (the ledger's)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from fastmon.content import served
from fastmon.content.detectors import detector_map
from fastmon.models import ContentPartial, Run, RunContent, StfFile, TfSample
from fastmon.testing.content import reference_occupancy, write_etf1_stf
from fastmon.testing.messages import stf_body, stf_name
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until
from tests.celery import app

pytestmark = pytest.mark.django_db(transaction=True)

RUN, STFS, TFS = 100950, 24, 60
WORKER = ["-m", "celery", "-A", "tests", "worker", "--loglevel", "info", "--concurrency", "1",
          "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
Publish = Callable[[str, Iterable[str]], None]


def write_run(directory: Path, url: str | None = None, announce_offsets: bool = True) -> list[str]:
    """ETF1 STFs of the run in ``directory``, announced at ``url`` (else as local files)."""
    bodies = []
    for n in range(1, STFS + 1):
        path = directory / stf_name(RUN, n)
        written = write_etf1_stf(path, TFS, hits_per_source=1.5, seed=n, unmapped=(5,))
        extra = {"tf_offsets": written.offsets} if announce_offsets and n % 2 else {}
        bodies.append(stf_body("stf_ready", RUN, n, file_url=f"{url}{path.name}" if url else
                               path.as_uri(), size_bytes=path.stat().st_size, tf_count=TFS,
                               **extra))  # fmt: skip
    return bodies


def wait_for_content(consumer: ServiceProcess) -> None:
    """Every STF sampled and every partial folded by run_fastmon's merger."""
    wait_until(lambda: StfFile.objects.filter(status=StfFile.Status.SAMPLED).count() == STFS,
               120, f"all {STFS} STFs sampled", context=consumer.output)  # fmt: skip
    wait_until(lambda: not ContentPartial.objects.exists() and RunContent.objects.exists(), 30,
               "the partials merged", context=consumer.output)  # fmt: skip


def assert_served_equals_reference(directory: Path) -> None:
    content = served.run_content(Run.objects.get(run_number=RUN))
    ranges: dict[str, list[tuple[int, int]]] = {}
    for sample in TfSample.objects.select_related("stf"):
        ranges.setdefault(sample.stf.stf_filename, []).append((sample.tf_first, sample.tf_last))
    assert len(ranges) == STFS
    for detector in detector_map():
        expected = sum(reference_occupancy(directory / name, found, detector.name)
                       for name, found in ranges.items())  # fmt: skip
        served_bins = content.histograms[f"{detector.name}/occupancy"].view()
        assert np.array_equal(served_bins, expected), detector.name
    tfs = sum(last - first + 1 for found in ranges.values() for first, last in found)
    assert (content.tfs_decoded, content.corrupt_tfs, content.undecodable) == (tfs, 0, 0)
    assert set(content.unmapped) == {"5"}


def test_two_celery_workers_one_killed_count_every_sample_once(
    start_process: Callable[..., ServiceProcess], publish: Publish, unique_topic: str,
    tmp_path: Path, redis_url: str,
) -> None:  # fmt: skip
    app.control.purge()
    data = tmp_path / "data"
    data.mkdir()
    bodies = write_run(data)
    changes = consumer_settings(unique_topic, SAMPLING_ENABLED=True, SAMPLING_WORKERS="celery",
                                SAMPLING_TASK_CHUNK=2, DATA_ROOTS=[str(data)],
                                CONTENT_CYCLE_S=0.5)  # fmt: skip
    first = start_process(changes, command="celery", argv=WORKER)
    second = start_process(changes, command="celery", argv=WORKER)
    first.wait_for_log("ready.")
    second.wait_for_log("ready.")
    consumer = start_process(changes)
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    publish(unique_topic, bodies)
    wait_until(lambda: TfSample.objects.exists(), 60, "sampling under way",
               context=first.output)  # fmt: skip
    first.kill_all()  # SIGKILL: its task in hand goes to the other worker (acks late)
    wait_for_content(consumer)
    assert_served_equals_reference(data)
    assert TfSample.objects.count() == STFS * 7


def test_run_fastmons_own_sampler_without_celery(
    start_process: Callable[..., ServiceProcess], publish: Publish, unique_topic: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    bodies = write_run(tmp_path, announce_offsets=False)  # every boundary from the files' index
    consumer = start_process(consumer_settings(
        unique_topic, SAMPLING_ENABLED=True, SAMPLING_WORKERS="run_fastmon",
        DATA_ROOTS=[str(tmp_path)], CONTENT_CYCLE_S=0.5,
    ))  # fmt: skip
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    publish(unique_topic, bodies)
    wait_for_content(consumer)
    assert_served_equals_reference(tmp_path)
    assert set(TfSample.objects.values_list("tf_boundaries", flat=True)) == {"index"}


@pytest.mark.parametrize("protocol", ["root", "http"])
def test_stfs_read_over_xrootd_and_http(
    protocol: str, start_process: Callable[..., ServiceProcess], publish: Publish,
    unique_topic: str, remote_data_dir: Path,
) -> None:  # fmt: skip
    relative = remote_data_dir.name
    root = (f"{settings.XROOTD_URL}/{relative}/" if protocol == "root"
            else f"{settings.HTTP_DATA_URL}{relative}/")  # fmt: skip
    bodies = write_run(remote_data_dir, url=root)
    consumer = start_process(consumer_settings(
        unique_topic, SAMPLING_ENABLED=True, SAMPLING_WORKERS="run_fastmon", DATA_ROOTS=[root],
        CONTENT_CYCLE_S=0.5,
    ))  # fmt: skip
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    publish(unique_topic, bodies)
    wait_for_content(consumer)
    assert set(StfFile.objects.values_list("read_protocol", flat=True)) == {protocol}
    assert set(TfSample.objects.values_list("tf_boundaries", flat=True)) == {"announced", "index"}
    assert_served_equals_reference(remote_data_dir)
