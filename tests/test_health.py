"""Liveness and readiness: the page a load balancer asks follows run_fastmon and its broker
connection; ``fastmon_health`` fails while the database is cut."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from fastmon.testing.network import TcpProxy
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

StartProcess = Callable[..., ServiceProcess]
FAST_STATUS = {"HEARTBEAT_INTERVAL_S": 0.5, "CONSUMER_STATUS_INTERVAL_S": 0.3}


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
