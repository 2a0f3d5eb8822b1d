"""run_fastmon's quality ticker through the real broker: a flood of runs that send nothing is
judged within the tick's bound and alarmed in a few messages; a broker outage is not the DAQ's
silence, and the backlog drained after it is neither a burst nor a drop."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import pytest
import stomp

from fastmon.models import CheckState, Run, StfFile
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import example, stf_body
from fastmon.testing.network import TcpProxy
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

StartProcess = Callable[..., ServiceProcess]
Publish = Callable[[str, Iterable[str]], None]


def test_a_flood_of_runs_without_stfs_is_judged_within_the_bound_and_alarmed_together(
    start_process: StartProcess, publish: Publish, stomp_address, unique_topic: str
) -> None:
    """300 runs announced with no STF while run_fastmon was away (its durable subscription
    keeps them), each tick judging 50: the 50 latest raise their absence in a message or two,
    not 50, and clear it so when they end."""
    flood = range(100500, 100800)
    alarms = f"{unique_topic}.alarms"
    changes = consumer_settings(
        unique_topic, ALARM_DESTINATION=alarms, CHECK_GRACE_S=0, CHECK_INTERVAL_S=1,
        CHECK_TICK_MAX_RUNS=50, CHECKS=[
            # Longer than ingesting the flood takes: none is silent that long before all are in.
            {"class": "fastmon.quality.builtin.StfAbsence", "max_silence_s": 10},
            {"class": "fastmon.quality.builtin.EndRunTotal"}],
    )  # fmt: skip
    first = start_process(changes)
    first.wait_for_log(f"subscribed to {unique_topic}")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    publish(unique_topic, [json.dumps(example("start_run", run_id=run)) for run in flood])
    with subscribed(stomp_address, broker_login(), alarms) as (_, collector):
        consumer = start_process(changes)
        raised = collector.json_bodies(1, timeout=40, settle=3.0)
        ended = [example("end_run", run_id=run, total_stf_files=0) for run in flood]
        publish(unique_topic, map(json.dumps, ended))
        wait_until(lambda: not Run.objects.filter(state="run").exists(), 30, "every run ended")
        cleared = collector.json_bodies(1, timeout=15, settle=3.0)
    assert {(body["check"], body["action"]) for body in raised} == {("StfAbsence", "raise")}
    alarmed = sorted(run for body in raised for run in body["runs"])
    # The 50 latest (and more, if ingest was slow enough for earlier ones to stay judged that
    # long): in a message or two, and a few alone should a tick see only some cross the limit.
    assert set(flood[-50:]) <= set(alarmed) <= set(flood), alarmed
    assert len(raised) <= 5, [body["runs"] for body in raised]
    assert {(body["check"], body["action"]) for body in cleared} == {("StfAbsence", "clear")}
    assert sorted(run for body in cleared for run in body["runs"]) == alarmed
    assert len(cleared) <= 10, [len(body["runs"]) for body in cleared]
    assert "judging the 50 most recently active (CHECK_TICK_MAX_RUNS)" in consumer.output()


class Daq(threading.Thread):
    """A DAQ announcing STFs of ``run`` at 5 a second until ``stop``, each stamped with when
    it made it (exactly 0.2 s apart, the runner's naive local time), however late it sends."""

    def __init__(self, connection: stomp.Connection, topic: str, run_number: int) -> None:
        super().__init__(daemon=True)
        self.connection, self.topic, self.run_number = connection, topic, run_number
        self.sent = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        begin = datetime.now()
        while not self.stopping.wait(0.2):
            self.sent += 1
            made = (begin + timedelta(seconds=0.2 * self.sent)).isoformat()
            body = stf_body("stf_gen", self.run_number, self.sent, timestamp=made)
            self.connection.send(self.topic, body, headers={"persistent": "true"})


def test_a_broker_outage_is_fastmons_own_alarm_not_absence_and_its_backlog_no_rate_drop(
    start_process: StartProcess, stomp_address, stomp_connection: stomp.Connection,
    unique_topic: str,
) -> None:  # fmt: skip
    """STFs at 5/s throughout; run_fastmon's connection cut for 6 s meanwhile, its durable
    subscription keeping them: no absence and no rate drop (both bad here), one alarm of its
    own, raised and cleared."""
    run, alarms = 100810, f"{unique_topic}.alarms"
    proxy = TcpProxy(stomp_address)
    changes = consumer_settings(
        unique_topic, ALARM_DESTINATION=alarms, BROKER_HOSTS=[["127.0.0.1", proxy.port]],
        CHECK_GRACE_S=0, CHECK_INTERVAL_S=0.25, CHECKS=[
            {"class": "fastmon.quality.builtin.StfAbsence", "max_silence_s": 3},
            {"class": "fastmon.quality.builtin.StfRateDrop", "window_s": 1, "history": 6,
             "min_history": 3, "quality": "bad"}],
    )  # fmt: skip
    with subscribed(stomp_address, broker_login(), alarms) as (_, collector):
        consumer = start_process(changes)
        consumer.wait_for_log(f"subscribed to {unique_topic}")
        start = example("start_run", run_id=run, timestamp=datetime.now().isoformat())
        stomp_connection.send(unique_topic, json.dumps(start), headers={"persistent": "true"})
        daq = Daq(stomp_connection, unique_topic, run)
        daq.start()
        judged = CheckState.objects.filter(run__run_number=run, check_name="StfRateDrop")
        wait_until(lambda: judged.filter(reason__startswith="STF rate").exists(), 15,
                   "the rate compared", consumer.output)  # fmt: skip
        proxy.cut()
        time.sleep(6)
        proxy.restore()
        consumer.wait_for_log("reconnected to the broker", timeout=15)
        time.sleep(3)
        daq.stopping.set()
        daq.join()
        wait_until(lambda: StfFile.objects.filter(run__run_number=run).count() == daq.sent, 15,
                   "every STF stored", consumer.output)  # fmt: skip
        bodies = collector.json_bodies(2, timeout=10, settle=2.0)
    told = [(body["check"], body["action"], body["run_id"]) for body in bodies]
    assert told == [("BrokerConnection", "raise", None), ("BrokerConnection", "clear", None)], (
        bodies, consumer.output())  # fmt: skip
    assert bodies[0]["reason"].startswith("run_fastmon is not connected to the broker")
    rate = judged.get()
    assert (rate.quality, rate.reason) == ("good", "STF rate 5.00/s, usually 5.00/s")
