"""run_fastmon's heartbeats to swf-monitor (a stand-in on loopback): the spec's fields, READY,
PROCESSING and EXITED, and ingest going on while the monitor is down."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable

import pytest

from fastmon.models import StfFile
from fastmon.outbox.bodies import heartbeat_payload
from fastmon.swf_monitor.client import HEARTBEAT_PATH
from fastmon.testing.messages import stf_body
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.swf_monitor import SwfMonitorStandIn
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RUN = 100100
StartProcess = Callable[..., ServiceProcess]
Publish = Callable[[str, Iterable[str]], None]
FAST_STATUS = {"HEARTBEAT_INTERVAL_S": 0.5, "CONSUMER_STATUS_INTERVAL_S": 0.3}


def test_heartbeat_payload_has_the_spec_fields() -> None:
    payload = heartbeat_payload(agent_name="fastmon-agent-x-1", connected=False, state="READY",
                                namespace="epic-fastmon", pid=7, hostname="h")  # fmt: skip
    assert payload == {
        "instance_name": "fastmon-agent-x-1", "agent_type": "fastmon", "status": "WARNING",
        "description": "", "mq_connected": False, "pid": 7, "hostname": "h",
        "operational_state": "READY", "namespace": "epic-fastmon",
    }  # fmt: skip


def test_heartbeats_reach_the_monitor_and_ingest_goes_on_while_it_is_down(
    start_process: StartProcess,
    publish: Publish,
    unique_topic: str,
    monitor: SwfMonitorStandIn,
) -> None:
    monitored = {"SWF_MONITOR_URL": monitor.url, "SWF_API_TOKEN": "secret"}
    settings = consumer_settings(unique_topic, NAMESPACE="epic-fastmon", **monitored, **FAST_STATUS)
    consumer = start_process(settings)
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    wait_until(lambda: any(b["operational_state"] == "READY" for *_, b in monitor.received),
               10, "a READY heartbeat", context=consumer.output)  # fmt: skip
    path, headers, body = monitor.received[-1]
    assert path == HEARTBEAT_PATH
    assert headers["Authorization"] == "Token secret"
    assert body["instance_name"] == settings["AGENT_NAME"]
    assert body["agent_type"] == "fastmon"
    assert body["status"] == "OK" and body["mq_connected"] is True
    assert body["namespace"] == "epic-fastmon"
    assert body["pid"] == consumer.process.pid and body["hostname"]

    monitor.stop()
    publish(unique_topic, (stf_body("stf_gen", RUN, n) for n in range(1, 51)))
    wait_until(lambda: StfFile.objects.count() == 50, 20, "ingest with the monitor down",
               context=consumer.output)  # fmt: skip
    consumer.wait_for_log("heartbeat to swf-monitor failed")

    seen = len(monitor.received)
    monitor.start()
    wait_until(lambda: len(monitor.received) > seen, 10, "heartbeats resumed")
    more = iter(range(51, 1000))

    def processing() -> bool:
        """PROCESSING means a message within the last interval: keep some coming."""
        publish(unique_topic, [stf_body("stf_gen", RUN, next(more))])
        return monitor.received[-1][2]["operational_state"] == "PROCESSING"

    wait_until(processing, 10, "a PROCESSING heartbeat")

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0
    assert monitor.received[-1][2]["operational_state"] == "EXITED"


def test_no_monitor_url_no_heartbeat_thread(
    start_process: StartProcess, unique_topic: str, monitor: SwfMonitorStandIn
) -> None:
    consumer = start_process(consumer_settings(unique_topic, **FAST_STATUS))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0
    assert monitor.received == [] and "heartbeat" not in consumer.output()
