"""The hand-off to fast processing (SWF_MONITOR_FEED on): a fast-processing agent that POSTs a
TFSlice to swf-monitor the instant each ``tf_file_registered`` arrives is never refused (the
stand-in swf-monitor enforces that a TFSlice needs its FastMonFile), across thousands of samples
and a SIGKILL of run_fastmon; every broadcast ``tf_file_id`` is swf-monitor's, and the checksum
sits in swf-monitor's column. Status changes flow both ways."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import stomp
from django.conf import settings
from django.test import override_settings

from fastmon.models import OutboxMessage, StfFile, TfSample
from fastmon.sampling.policy import TfRange
from fastmon.sampling.samples import SamplePlan, change_sample, record_tf_samples
from fastmon.simulator.files import write_stf_file
from fastmon.statistics.read import run_statistics
from fastmon.swf_monitor.feed import relay_to_monitor, sync_from_monitor
from fastmon.testing.announcing import announce
from fastmon.testing.broker import Collector, broker_login
from fastmon.testing.messages import stf_body, stf_name
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.swf_monitor import TF_SLICES_PATH, SwfMonitorStandIn
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RUN, STFS = 100900, 300  # 2,100 samples with the testbed's policy
Publish = Callable[[str, Iterable[str]], None]


class FastProcessingAgent(stomp.ConnectionListener):
    """The testbed's fast-processing agent, as far as the hand-off goes: on each
    ``tf_file_registered``, a TFSlice POSTed at once, then the sample looked up by the
    broadcast ``tf_file_id``."""

    def __init__(self, monitor: SwfMonitorStandIn) -> None:
        self.monitor = monitor
        self.seen: dict[str, str] = {}  # tf_filename -> broadcast tf_file_id
        self.refused: list[str] = []
        self.unresolved: list[str] = []
        self.lock = threading.Lock()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        body = json.loads(frame.body)
        name, file_id = body["tf_filename"], body["tf_file_id"]
        answer = self.request("POST", TF_SLICES_PATH, {
            "fastmon_file": name, "slice_id": 1, "tf_first": body["tf_first"],
            "tf_last": body["tf_first"], "tf_count": 1, "run_number": body["run_id"],
        })  # fmt: skip
        duplicate = name in self.seen  # at least once: a repeat's slice exists already
        if answer != 201 and not duplicate:
            self.refused.append(f"{name}: HTTP {answer}")
        if self.request("GET", f"/api/fastmon-files/{file_id}/") != 200:
            self.unresolved.append(f"{name}: {file_id}")
        with self.lock:
            self.seen[name] = file_id

    def request(self, method: str, path: str, body: dict | None = None) -> int:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.monitor.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


def test_a_slice_posted_at_once_is_never_refused_across_a_sigkill(
    start_process: Callable[..., ServiceProcess], stomp_address, publish: Publish,
    unique_topic: str, tmp_path: Path, assert_counters_agree: Callable[[], None],
) -> None:  # fmt: skip
    monitor = SwfMonitorStandIn()
    monitor.start()
    bodies = []
    for n in range(1, STFS + 1):
        path = tmp_path / stf_name(RUN, n)
        checksum = write_stf_file(path, 64 * 1024, seed=n)
        bodies.append(stf_body("stf_ready", RUN, n, file_url=path.as_uri(), checksum=checksum,
                               size_bytes=64 * 1024))  # fmt: skip
    out = f"{unique_topic}.out"
    changes = consumer_settings(
        unique_topic, SAMPLING_ENABLED=True, SAMPLING_WORKERS="run_fastmon",
        DATA_ROOTS=[str(tmp_path)], PUBLISH_DESTINATION=out, SWF_MONITOR_URL=monitor.url,
        SWF_MONITOR_FEED=True, OUTBOX_RETRY_MAX_S=1.0,
    )  # fmt: skip

    agent = FastProcessingAgent(monitor)
    connection = stomp.Connection([stomp_address], auto_decode=False)
    receipts = Collector()
    connection.set_listener("agent", agent)
    connection.set_listener("receipts", receipts)
    connection.connect(*broker_login(), wait=True)
    connection.subscribe(out, id="1", ack="auto", headers={"receipt": "subscribed"})
    receipts.wait_for_receipt("subscribed")
    try:
        consumer = start_process(changes)
        consumer.wait_for_log(f"subscribed to {unique_topic}")
        publish(unique_topic, bodies)
        wait_until(lambda: TfSample.objects.count() >= 500, 60, "samples under way",
                   context=consumer.output)  # fmt: skip
        consumer.kill_all()  # SIGKILL, mid-stream: whatever it held is redone by the next

        consumer = start_process(changes)
        total = STFS * 7
        wait_until(
            lambda: len(agent.seen) == total,
            180,
            f"all {total} samples handed over",
            context=lambda: f"{len(agent.seen)} seen\n{consumer.output()[-3000:]}",
        )
    finally:
        connection.disconnect()
        monitor.stop()

    assert agent.refused == []  # no TFSlice ever lacked its FastMonFile
    assert agent.unresolved == []  # every broadcast tf_file_id is swf-monitor's
    samples = {s.tf_filename: s for s in TfSample.objects.all()}
    assert set(agent.seen) == set(samples) == set(monitor.fastmon_files)
    for name, row in monitor.fastmon_files.items():
        assert agent.seen[name] == row["tf_file_id"] == str(samples[name].monitor_file_id)
        assert row["checksum"] == samples[name].checksum and row["checksum"].startswith("ad:")
    assert_counters_agree()  # a SIGKILL mid-stream left no sample counted twice or not at all
    assert not OutboxMessage.objects.filter(sent_at=None).exists()


def test_status_changes_flow_both_ways(assert_counters_agree: Callable[[], None]) -> None:
    monitor = SwfMonitorStandIn()
    monitor.start()
    announce("stf_gen", 100100, 1, 2)
    feed = {"SWF_MONITOR_URL": monitor.url, "SWF_MONITOR_FEED": True}
    try:
        with override_settings(FASTMON={**settings.FASTMON, **feed}):
            stfs = StfFile.objects.select_related("run").order_by("sequence")
            record_tf_samples([SamplePlan(stf, [TfRange(0, 9)]) for stf in stfs])
            first, second = TfSample.objects.order_by("tf_filename")
            # Changed here before swf-monitor has it: the change waits for the registration.
            change_sample(first, {"status": "processing"})
            assert relay_to_monitor(50) == 2  # the two registrations; the change was held
            assert relay_to_monitor(50) == 1  # released with them: now the change
            assert monitor.fastmon_files[first.tf_filename]["status"] == "processing"

            # Changed there (the fast-processing agent): brought here by the sync.
            monitor.fastmon_files[second.tf_filename]["status"] = "processed"
            assert sync_from_monitor() == 1
            second.refresh_from_db()
            assert second.status == "processed"
            assert sync_from_monitor() == 0  # nothing new
            assert_counters_agree()
            assert run_statistics(first.run)["tf_sample_status_counts"] == {
                "processing": 1, "processed": 1,
            }  # fmt: skip
    finally:
        monitor.stop()
    patches = [body for path, _, body in monitor.received if path.endswith(
        f"{monitor.fastmon_files[first.tf_filename]['tf_file_id']}/")]  # fmt: skip
    assert patches == [{"status": "processing", "metadata": {}}]
