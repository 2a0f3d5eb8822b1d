"""Fast processing observed: slices, worker broadcasts and slice results stored idempotently
(late, repeated, out of order), the run's figures served, and, on the real broker, results read
from a broker-side copy while the results queue's own reader still gets every one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from fastmon.inbound.bounds import CUT, json_size
from fastmon.inbound.messages import Outcome
from fastmon.ingest.pipeline import ingest_message
from fastmon.models import DeadLetter, LiveEvent, Run, Slice
from fastmon.sampling.policy import TfRange
from fastmon.sampling.samples import SamplePlan, record_tf_samples
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import (
    EXAMPLE_RUN,
    EXAMPLE_SAMPLE,
    SLICES_QUEUED_AT,
    example,
    slice_body,
    slice_result_body,
)
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

API = "/fastmon/api"
RUN = EXAMPLE_RUN  # the run of the example slices


@pytest.mark.django_db
def test_slices_and_results_are_stored_once_in_any_order() -> None:
    ingest_message(json.dumps(example("stf_gen", run_id=RUN)))
    record_tf_samples([SamplePlan(Run.objects.get().stf_files.get(), [TfRange(0, 31)])])
    for n in range(4):
        assert ingest_message(slice_body(n, req_id=f"r{n}")).outcome is Outcome.STORED
    assert ingest_message(slice_body(0, req_id="r0")).outcome is Outcome.STORED  # redelivered
    ingest_message(slice_result_body(0, seconds=30))
    ingest_message(slice_result_body(0, seconds=30))  # repeated
    ingest_message(slice_result_body(1, state="failed", seconds=10))
    requeued = SLICES_QUEUED_AT + timedelta(seconds=20)
    ingest_message(slice_body(1, req_id="r1-again", at=requeued))  # re-queued
    ingest_message(slice_result_body(1, seconds=50, processing_seconds=12.5))
    ingest_message(slice_result_body(1, state="failed", seconds=60))  # late: done stays done
    ingest_message(slice_result_body(9, seconds=40))  # before its slice message
    ingest_message(slice_body(9, req_id="r9"))

    slices = {s.slice_id: s for s in Slice.objects.all()}
    assert Slice.objects.count() == 5
    assert {n: s.status for n, s in slices.items()} == {
        0: "done", 1: "done", 2: "queued", 3: "queued", 9: "done"}  # fmt: skip
    assert (slices[0].retries, slices[1].retries, slices[9].retries) == (0, 1, 0)
    assert slices[0].processing_seconds == 30.0  # queued to answered
    assert slices[1].processing_seconds == 12.5  # as the worker measured it
    assert slices[9].processing_seconds == 40.0  # known once its slice message came
    assert slices[0].sample.tf_filename == EXAMPLE_SAMPLE and slices[0].worker == "wn01"

    ingest_message(json.dumps({
        "msg_type": "run_imminent_worker", "run_id": RUN, "created_at": "2026-11-20T14:03:00",
        "content": {"msg_type": "run_imminent", "run_id": RUN, "target_worker_count": 4,
                    "core_count": 4, "slice_processing_time": 30, "worker_rampup_time": 5},
    }))  # fmt: skip
    assert Run.objects.get().fast_processing == {
        "target_worker_count": 4, "core_count": 4, "slice_processing_time": 30,
        "worker_rampup_time": 5}  # fmt: skip
    events = LiveEvent.objects.filter(kind="processing")
    assert sum(e.payload["slices"].get("done", 0) for e in events) >= 3

    summary = APIClient().get(f"{API}/runs/{RUN}/processing/").json()
    assert summary["slices"] == {"total": 5, "queued": 2, "processing": 0, "done": 3, "failed": 0}
    assert summary["success_rate"] == 1.0 and summary["retries"] == 1
    assert summary["processing_seconds"] == {"count": 3, "p50": 30.0, "p95": 39.0}
    assert summary["workers"] == {"seen": 1, "targeted": 4}
    assert summary["latency_seconds"]["stf_to_result"]["count"] == 3

    scraped = APIClient().get("/fastmon/metrics/").content.decode()
    assert f'fastmon_run_slices{{run="{RUN}",status="done"}} 3.0' in scraped
    assert f'fastmon_run_slice_processing_seconds{{quantile="0.50",run="{RUN}"}} 30.0' in scraped

    listed = APIClient().get(f"{API}/slices/", {"run_number": RUN, "status": "queued"}).json()
    assert sorted(row["slice_id"] for row in listed["results"]) == [2, 3]
    csv = APIClient().get(f"{API}/slices/", {"run_number": RUN, "format": "csv"})
    assert csv.status_code == 200 and b"processing_seconds" in csv.content.splitlines()[0]


@pytest.mark.django_db
def test_a_result_without_its_slice_name_is_a_dead_letter() -> None:
    body = json.loads(slice_result_body(0))
    del body["content"]["result"]["result"]["tf_filename"]
    result = ingest_message(json.dumps(body))
    assert result.outcome is Outcome.DEAD_LETTERED
    assert "tf_filename" in result.detail


@pytest.mark.django_db(transaction=True)
def test_the_results_queue_keeps_its_reader_while_fastmon_counts_the_copy(
    start_process: Callable[..., ServiceProcess],
    stomp_address,
    publish: Callable[[str, Iterable[str]], None],
    unique_topic: str,
) -> None:
    """The broker (scripts/services.sh) forwards a copy of /queue/panda.results.fastprocessing
    to a topic fastmon reads; the queue's real reader still receives every result."""
    queue, copy = (
        "/queue/panda.results.fastprocessing",
        ("/topic/fastmon.copy.panda.results.fastprocessing"),
    )
    slices = f"{unique_topic}.slices"
    changes = consumer_settings(unique_topic, FAST_PROCESSING_DESTINATIONS=[slices, copy],
                                DURABLE_SUBSCRIPTION=False)  # fmt: skip
    with subscribed(stomp_address, broker_login(), queue) as (_, reader):
        reader.frames_received(10_000, timeout=1, settle=0.5)  # whatever an earlier run left
        consumer = start_process(changes)
        consumer.wait_for_log(f"subscribed to {copy}")
        publish(slices, [slice_body(n, req_id=f"q{n}") for n in range(20)])
        results = [slice_result_body(n, state="failed" if n % 5 == 0 else "done", seconds=20 + n)
                   for n in range(20)]  # fmt: skip
        publish(queue, results)  # what the workers send
        received = reader.json_bodies(20, timeout=20)
        wait_until(lambda: Slice.objects.exclude(status="queued").count() == 20, 30,
                   "every result counted by fastmon", context=consumer.output)  # fmt: skip

    assert sorted(b["content"]["result"]["result"]["slice_id"] for b in received) == list(range(20))
    summary = APIClient().get(f"{API}/runs/{RUN}/processing/").json()
    assert summary["slices"]["done"] == 16 and summary["slices"]["failed"] == 4
    done_seconds = sorted(
        Slice.objects.filter(status="done").values_list("processing_seconds", flat=True)
    )
    assert done_seconds == [float(20 + n) for n in range(20) if n % 5]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_through_the_broker_an_empty_result_is_invalid_and_metrics_are_kept_and_listed_bounded(
    start_process: Callable[..., ServiceProcess],
    publish: Callable[[str, Iterable[str]], None],
    unique_topic: str,
) -> None:
    """``"result": {}`` is a dead letter ``invalid`` naming what is missing (it was ``internal:
    KeyError('result')``); a mebibyte of metrics is kept to STORED_JSON_MAX_BYTES, and a list
    serves each slice's to LISTED_JSON_MAX_BYTES, the cut said where the metrics were."""
    consumer = start_process(consumer_settings(unique_topic, DURABLE_SUBSCRIPTION=False))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    empty = json.loads(slice_result_body(1))
    empty["content"]["result"] = {}
    huge = {"processing_seconds": 12.5, "blob": "x" * 1_000_000}
    many = {f"histogram_{n}": "y" * 2000 for n in range(30)}  # 60 KB: kept whole
    publish(unique_topic, [json.dumps(empty), slice_result_body(0, **huge),
                           slice_result_body(2, **many)])  # fmt: skip
    wait_until(lambda: Slice.objects.count() == 2 and DeadLetter.objects.exists(), 20,
               "two results stored, one dead-lettered", context=consumer.output)  # fmt: skip

    letter = DeadLetter.objects.get()
    assert letter.reason_code == DeadLetter.Reason.INVALID
    assert "content.result.result: missing" in letter.reason
    kept = Slice.objects.get(slice_id=0)
    assert kept.metrics == {
        "processing_seconds": 12.5,
        CUT: {"bytes": json_size(huge), "left_out": 1, "keys": ["blob"]},
    }
    assert kept.processing_seconds == 12.5
    assert Slice.objects.get(slice_id=2).metrics == many

    listed = APIClient().get(f"{API}/slices/", {"run_number": RUN})
    assert len(listed.content) < 10_000
    rows = {row["slice_id"]: row["metrics"] for row in listed.json()["results"]}
    assert rows[0] == kept.metrics
    assert 0 < len(rows[2]) - 1 < len(many)
    assert rows[2][CUT]["bytes"] == json_size(many)
    csv = APIClient().get(f"{API}/slices/", {"run_number": RUN, "format": "csv"})
    assert csv.status_code == 200 and len(csv.content) < 10_000
    name = Slice.objects.get(slice_id=2).tf_filename
    assert APIClient().get(f"{API}/slices/{name}/").json()["metrics"] == many
