"""Keeping swf-monitor's own fastmon-files fed (#9 item 4), against a real HTTP server on
loopback standing in for swf-monitor, with run_fastmon's feed thread doing the POSTs."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterable

import pytest
from django.conf import settings
from django.test import override_settings

from fastmon.models import OutboxMessage, StfFile, TfSample
from fastmon.sampling.policy import TfRange
from fastmon.sampling.samples import SamplePlan, record_tf_samples
from fastmon.swf_monitor.client import FASTMON_FILES_PATH
from fastmon.swf_monitor.feed import relay_to_monitor
from fastmon.testing.announcing import announce
from fastmon.testing.messages import stf_body, stf_name
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.swf_monitor import SwfMonitorStandIn
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RUN = 100100

# swf-monitor's FastMonFile fields a POST sets (docs/wire-formats.md).
SPEC_FIELDS = {"stf_file", "tf_filename", "tf_first", "tf_last", "tf_count", "file_size_bytes",
               "checksum", "status", "metadata"}  # fmt: skip


def test_every_sample_reaches_swf_monitor_once_after_it_comes_back(
    start_process: Callable[..., ServiceProcess],
    publish: Callable[[str, Iterable[str]], None],
    unique_topic: str,
) -> None:
    # swf-monitor knows every STF but the fifth, and already has one sample (a POST whose
    # answer was lost, say); it is down when run_fastmon starts.
    known = {stf_name(RUN, n) for n in range(1, 21) if n != 5}
    monitor = SwfMonitorStandIn(known_stfs=known)
    monitor.start()
    monitor.stop()
    already = "swf.100100.000002_tf_001.tf"
    monitor.fastmon_files[already] = {
        "tf_filename": already, "stf_file": "swf.100100.000002.stf",
        "tf_file_id": "5f0c7c33-59c2-4b5c-9f0e-2b7d9e0d1a11",
    }  # fmt: skip
    feed = {"SWF_MONITOR_URL": monitor.url, "SWF_API_TOKEN": "secret", "SWF_MONITOR_FEED": True,
            "PUBLISH_DESTINATION": f"{unique_topic}.out"}  # fmt: skip
    consumer = start_process(consumer_settings(unique_topic, OUTBOX_RETRY_MAX_S=1.0, **feed))
    consumer.wait_for_log(f"subscribed to {unique_topic}")

    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(1, 21)))
    wait_until(lambda: StfFile.objects.count() == 20, 20, "20 STFs stored with the monitor down",
               context=consumer.output)  # fmt: skip
    with override_settings(FASTMON={**settings.FASTMON, **feed}):
        ranges = [TfRange(0, 9, file_size_bytes=20480, checksum="ad:1"), TfRange(500, 509)]
        record_tf_samples([SamplePlan(stf, ranges) for stf in StfFile.objects.all()])
    assert TfSample.objects.count() == 40
    consumer.wait_for_log("swf-monitor feed waits")
    assert OutboxMessage.objects.filter(transport="swf_monitor", sent_at=None).count() == 40

    monitor.start()
    unknown = ["swf.100100.000005_tf_001.tf", "swf.100100.000005_tf_002.tf"]
    registered = TfSample.objects.filter(monitor_state="registered")
    wait_until(lambda: registered.count() == 38, 30, "every sample of a known STF registered",
               context=consumer.output)  # fmt: skip

    posted = monitor.posts(FASTMON_FILES_PATH)
    names = [body["tf_filename"] for body in posted if body["tf_filename"] not in unknown]
    assert len(names) == 38 and set(monitor.fastmon_files) == set(names)
    assert sorted(names) == sorted(set(names))  # each POSTed once, the known one included
    first = next(body for body in posted if body["tf_filename"] == "swf.100100.000001_tf_001.tf")
    assert set(first) == SPEC_FIELDS
    assert first == {
        "stf_file": "swf.100100.000001.stf", "tf_filename": "swf.100100.000001_tf_001.tf",
        "tf_first": 0, "tf_last": 9, "tf_count": 10, "file_size_bytes": 20480,
        "checksum": "ad:1", "status": "registered", "metadata": {},
    }  # fmt: skip
    assert all(headers["Authorization"] == "Token secret" for _, headers, _ in monitor.received)
    # Every sample knows its id in swf-monitor: the one it made, for the lost answer too.
    for sample in registered.all():
        assert (
            str(sample.monitor_file_id) == monitor.fastmon_files[sample.tf_filename]["tf_file_id"]
        )

    # The STF swf-monitor does not know yet: its samples wait, retried, the reason kept; nothing
    # is refused for good, nothing else is held up.
    waiting = OutboxMessage.objects.filter(transport="swf_monitor", subject__in=unknown)
    wait_until(lambda: all(row.attempts >= 2 for row in waiting.all()), 20, "retries")
    assert not waiting.exclude(failed_at=None).exists()
    assert all("does not know the STF" in row.last_error for row in waiting)
    assert set(TfSample.objects.filter(tf_filename__in=unknown)
               .values_list("monitor_state", flat=True)) == {"waiting"}  # fmt: skip
    assert json.loads(waiting.first().body)["stf_file"] == "swf.100100.000005.stf"

    monitor.known_stfs.add("swf.100100.000005.stf")  # the data agent registers it, late
    wait_until(lambda: registered.count() == 40, 30, "the late STF's samples registered",
               context=consumer.output)  # fmt: skip
    monitor.stop()
    assert not OutboxMessage.objects.filter(transport="swf_monitor").exclude(failed_at=None)

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=20) == 0


def test_the_feed_is_off_by_default() -> None:
    announce("stf_gen", RUN, 1)
    with override_settings(FASTMON={**settings.FASTMON, "SWF_MONITOR_URL": "http://127.0.0.1:9"}):
        record_tf_samples([SamplePlan(StfFile.objects.get(), [TfRange(0, 9)])])
    assert not OutboxMessage.objects.filter(transport="swf_monitor").exists()
    assert OutboxMessage.objects.filter(transport="broker").count() == 1


def test_a_sample_swf_monitor_keeps_failing_on_holds_up_no_other() -> None:
    monitor = SwfMonitorStandIn()
    monitor.start()
    announce("stf_gen", RUN, 1, 2)
    feed = {"SWF_MONITOR_URL": monitor.url, "SWF_MONITOR_FEED": True, "RETRY_MIN_S": 30.0}
    with override_settings(FASTMON={**settings.FASTMON, **feed}):
        stfs = StfFile.objects.select_related("run").order_by("sequence")
        record_tf_samples([SamplePlan(stf, [TfRange(0, 9), TfRange(10, 19)]) for stf in stfs])
        broken, garbled = "swf.100100.000001_tf_001.tf", "swf.100100.000001_tf_002.tf"
        monitor.overrides = {broken: (500, {"detail": "server bug"}),
                             garbled: (200, {"login": "please"})}  # fmt: skip
        assert relay_to_monitor(50) == 4
        assert set(monitor.fastmon_files) == {
            "swf.100100.000002_tf_001.tf", "swf.100100.000002_tf_002.tf",
        }  # fmt: skip
        waiting = OutboxMessage.objects.filter(
            transport="swf_monitor", subject__in=[broken, garbled]
        )
        assert all(row.sent_at is None and row.failed_at is None and row.next_attempt_at
                   for row in waiting)  # fmt: skip
        assert relay_to_monitor(50) == 0  # backing off

        monitor.overrides = {}
        waiting.update(next_attempt_at=None)
        assert relay_to_monitor(50) == 2
    monitor.stop()
    assert len(monitor.fastmon_files) == 4
    assert not OutboxMessage.objects.filter(transport="swf_monitor", sent_at=None).exists()
