"""Built-in checks through the real broker and run_fastmon: one absurd sequence number is not a
gap of two billion, and a late STF past the remembered gaps is not a duplicate; dead letters
make bad only the run their bodies name."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import pytest

from fastmon.models import Alarm, CheckState, StfFile
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import example, stf_body
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import holds_for, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

StartProcess = Callable[..., ServiceProcess]
Publish = Callable[[str, Iterable[str]], None]


def start(start_process: StartProcess, topic: str, *checks: dict) -> ServiceProcess:
    consumer = start_process(consumer_settings(
        topic, ALARM_DESTINATION=f"{topic}.alarms", CHECK_GRACE_S=0, CHECK_INTERVAL_S=0.5,
        CHECKS=list(checks),
    ))  # fmt: skip
    consumer.wait_for_log(f"subscribed to {topic}")
    return consumer


def test_an_absurd_sequence_number_is_implausible_and_a_late_stf_past_the_gaps_is_late(
    start_process: StartProcess, publish: Publish, unique_topic: str
) -> None:
    odd, gapped = 100460, 100461
    consumer = start(start_process, unique_topic, {"class": "fastmon.quality.builtin.StfSequence"})
    publish(unique_topic, [
        *(json.dumps(example("start_run", run_id=run)) for run in (odd, gapped)),
        *(stf_body("stf_gen", odd, n) for n in (1, 2, 3, 2147483647, 4, 5)),
        *(stf_body("stf_gen", gapped, n) for n in (1, 20_005, 15_000)),
    ])  # fmt: skip
    wait_until(lambda: StfFile.objects.count() == 9, 20, "every STF stored", consumer.output)
    wait_until(lambda: CheckState.objects.filter(reason__contains="late").exists(), 10,
               "the late STF judged", consumer.output)  # fmt: skip
    state = CheckState.objects.get(run__run_number=odd, check_name="StfSequence")
    assert (state.quality, state.reason) == (
        "medium", "STF sequence: 1 implausible (2147483647)")  # fmt: skip
    assert not Alarm.objects.filter(run__run_number=odd).exists()
    state = CheckState.objects.get(run__run_number=gapped, check_name="StfSequence")
    expected = "STF sequence: 20002 missing (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...); 1 late"
    assert state.reason == expected


def test_dead_letters_make_bad_only_the_run_their_bodies_name(
    start_process: StartProcess, publish: Publish, stomp_address, unique_topic: str
) -> None:
    named, other = 100462, 100463
    alarms = f"{unique_topic}.alarms"
    letters = [json.dumps({"msg_type": "stf_ready", "run_id": named, "n": n}) for n in range(4)]
    with subscribed(stomp_address, broker_login(), alarms) as (_, collector):
        rate = {"class": "fastmon.quality.builtin.DeadLetterRate", "max_count": 3}
        consumer = start(start_process, unique_topic, rate)
        publish(unique_topic, [json.dumps(example("start_run", run_id=run))
                               for run in (named, other)] + letters)  # fmt: skip
        [raised] = collector.json_bodies(1, timeout=15, settle=2.0)
    assert (raised["check"], raised["run_id"], raised["action"]) == (
        "DeadLetterRate", named, "raise"), consumer.output()  # fmt: skip
    assert raised["reason"] == "4 dead letters in the last 60 s"
    holds_for(lambda: not Alarm.objects.filter(run__run_number=other).exists(), 1.0,
              "no alarm for the run the letters do not name")  # fmt: skip
    judged = CheckState.objects.get(run__run_number=other, check_name="DeadLetterRate")
    assert (judged.quality, judged.reason) == ("good", "0 dead letters in the last 60 s")
