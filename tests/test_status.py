"""Status (#9): heartbeats to a stand-in swf-monitor, health checks, Prometheus metrics."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from fastmon.models import DeadLetter, StfFile
from fastmon.outbox.bodies import heartbeat_payload
from fastmon.swf_monitor.client import HEARTBEAT_PATH
from fastmon.testing.swf_monitor import SwfMonitorStandIn
from tests.conftest import ServiceProcess, TcpProxy, wait_until
from tests.test_consumer import consumer_settings, publish, stf_gen

pytestmark = pytest.mark.django_db(transaction=True)

StartProcess = Callable[..., ServiceProcess]
FAST_STATUS = {"HEARTBEAT_INTERVAL_S": 0.5, "CONSUMER_STATUS_INTERVAL_S": 0.3}


@pytest.fixture
def monitor() -> Iterator[SwfMonitorStandIn]:
    stand_in = SwfMonitorStandIn()
    stand_in.start()
    yield stand_in
    stand_in.stop()


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
    stomp_address: tuple[str, int],
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
    publish(unique_topic, (stf_gen(n) for n in range(1, 51)), stomp_address)
    wait_until(lambda: StfFile.objects.count() == 50, 20, "ingest with the monitor down",
               context=consumer.output)  # fmt: skip
    consumer.wait_for_log("heartbeat to swf-monitor failed")

    seen = len(monitor.received)
    monitor.start()
    wait_until(lambda: len(monitor.received) > seen, 10, "heartbeats resumed")
    more = iter(range(51, 1000))

    def processing() -> bool:
        """PROCESSING means a message within the last interval: keep some coming."""
        publish(unique_topic, [stf_gen(next(more))], stomp_address)
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


def ready(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/fastmon/health/ready/")
    return response.status_code, response.json()


def test_readiness_follows_the_consumer_and_its_broker_connection(
    start_process: StartProcess, stomp_address: tuple[str, int], unique_topic: str, settings: Any
) -> None:
    settings.FASTMON = {**settings.FASTMON, "HEALTH_CONSUMER_STALE_S": 5}
    client = Client()
    assert client.get("/fastmon/health/live/").json() == {"status": "ok"}
    status, report = ready(client)
    assert status == 503 and report["checks"]["consumers"]["detail"] == "no run_fastmon reports"
    assert report["checks"]["database"]["ok"] and report["checks"]["redis"]["ok"]

    broker = TcpProxy(stomp_address)
    through_proxy = [["127.0.0.1", broker.port]]
    consumer = start_process(
        consumer_settings(unique_topic, BROKER_HOSTS=through_proxy, **FAST_STATUS)
    )
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    wait_until(lambda: ready(client)[0] == 200, 10, "ready", context=lambda: str(ready(client)))

    broker.cut()
    wait_until(lambda: ready(client)[0] == 503, 10, "unready without the broker")
    detail = ready(client)[1]["checks"]["consumers"]["detail"]
    assert [c["broker_connected"] for c in detail.values()] == [False]

    broker.restore()
    wait_until(lambda: ready(client)[0] == 200, 15, "ready again", context=consumer.output)

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0
    assert ready(client)[0] == 503  # a clean stop removes its status: no consumer left


def test_health_command_fails_while_the_database_is_cut(
    start_process: StartProcess, unique_topic: str, db_proxy: TcpProxy
) -> None:
    consumer = start_process(consumer_settings(unique_topic, **FAST_STATUS))
    consumer.wait_for_log(f"subscribed to {unique_topic}")

    def health() -> tuple[int, dict[str, Any]]:
        command = start_process({}, db_port=db_proxy.port, command="fastmon_health")
        code = command.wait(timeout=30)
        return code, json.loads(command.output())

    wait_until(lambda: health()[0] == 0, 10, "healthy")
    db_proxy.cut()
    code, report = health()
    assert code == 1 and not report["checks"]["database"]["ok"]
    db_proxy.restore()
    assert health()[0] == 0


def test_metrics_add_up_what_the_consumer_process_counted(
    start_process: StartProcess,
    stomp_address: tuple[str, int],
    unique_topic: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the consumer inherits it
    consumer = start_process(consumer_settings(unique_topic))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    publish(unique_topic, [*(stf_gen(n) for n in range(1, 6)), "not json"], stomp_address)
    wait_until(lambda: DeadLetter.objects.exists() and StfFile.objects.count() == 5, 20,
               "ingested", context=consumer.output)  # fmt: skip

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = Client().get("/fastmon/metrics/").content.decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    values = wait_until(
        lambda: (s := samples()).get(("fastmon_messages_total",
                                      (("msg_type", "stf_gen"), ("outcome", "stored")))) == 5 and s,
        10, "message counts in /metrics/",
    )  # fmt: skip
    assert (
        values[("fastmon_messages_total", (("msg_type", "other"), ("outcome", "dead_lettered")))]
        == 1
    )
    assert values[("fastmon_dead_letters_total", ())] == 1
    assert values[("fastmon_batch_commit_seconds_count", ())] >= 1
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0
