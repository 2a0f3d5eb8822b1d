"""Data quality end to end: announcements become check verdicts, quality flags over time ranges
and alarms published through the outbox; the API serves them; nothing fires while a run is
paused or in standby; a stall while running raises an alarm in time (through the broker)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import Alarm, CheckState, DeadLetter, OutboxMessage, QualityFlag, Run
from fastmon.quality.evaluate import on_tick
from fastmon.quality.flags import run_quality
from fastmon.quality.framework import Check
from fastmon.testing.announcing import announce
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import example, stf_body, stf_example, stf_name
from fastmon.testing.processes import consumer_settings
from fastmon.testing.waiting import holds_for, wait_until

CLEAN, BAD = 100300, 100301
API = "/fastmon/api"


def run_messages(run: int, sequences: list[int], total: int, repeat: int | None = None,
                 at: str | None = None) -> list[str]:  # fmt: skip
    """A run as the runner announces it: imminent, start, an stf_gen per sequence number (one
    of them twice if ``repeat``), end with its total."""
    stamp = {"timestamp": at} if at else {}
    bodies = [
        example("run_imminent", run_id=run, **stamp),
        example("start_run", run_id=run, **stamp),
    ]
    for n in sequences + ([repeat] if repeat else []):
        bodies.append(stf_example("stf_gen", run, n))
    bodies.append(example("end_run", run_id=run, total_stf_files=total, **stamp))
    return [json.dumps(body) for body in bodies]


def alarms_sent(run: int) -> list[dict[str, Any]]:
    rows = OutboxMessage.objects.filter(msg_type="fastmon_alarm").order_by("id")
    return [json.loads(row.body) for row in rows if json.loads(row.body)["run_id"] == run]


@pytest.mark.django_db
def test_a_clean_run_ends_good_and_a_faulty_one_bad_with_flags_and_alarms() -> None:
    for body in run_messages(CLEAN, [1, 2, 3, 4, 5], total=5):
        ingest_message(body)
    for body in run_messages(BAD, [1, 2, 4, 5], total=6, repeat=2):
        ingest_message(body)

    clean = run_quality(Run.objects.get(run_number=CLEAN))
    assert clean["overall"] == "good", clean
    assert {flag["check"] for flag in clean["flags"]} >= {"StfSequence", "EndRunTotal"}
    assert alarms_sent(CLEAN) == []

    bad = run_quality(Run.objects.get(run_number=BAD))
    assert bad["overall"] == "bad"
    worst = {f["check"]: f for f in bad["flags"] if f["quality"] == "bad"}
    assert "1 missing (3)" in worst["StfSequence"]["reason"]
    assert "1 duplicated" in worst["StfSequence"]["reason"]
    assert worst["EndRunTotal"]["reason"] == "end_run says 6 STFs, 4 seen"
    ended = max(flag["end"] for flag in bad["flags"])
    for flag in bad["flags"]:  # time ranges, all closed by the end of the run
        assert flag["start"] <= flag["end"] <= ended
    # The end-of-run verdict covers the whole run.
    assert worst["EndRunTotal"]["start"] == min(flag["start"] for flag in bad["flags"])
    assert worst["EndRunTotal"]["end"] == ended
    sent = alarms_sent(BAD)
    raised = {body["check"] for body in sent if body["action"] == "raise"}
    assert raised == {"StfSequence", "EndRunTotal"}
    assert all(body["msg_type"] == "fastmon_alarm" for body in sent)
    assert {b["destination"] for b in OutboxMessage.objects.filter(
        msg_type="fastmon_alarm").values("destination")} == {"/topic/fastmon.alarms"}  # fmt: skip
    # The run ended: its alarms cleared, its faults stay in its flags.
    assert not Alarm.objects.filter(run__run_number=BAD, cleared_at=None).exists()


@pytest.mark.django_db
def test_the_quality_api_and_the_alarm_list(client) -> None:
    for body in run_messages(BAD, [1, 3], total=2):
        ingest_message(body)
    answer = client.get(f"{API}/runs/{BAD}/quality/").json()
    assert set(answer) >= {"overall", "flags"} and answer["overall"] == "bad"
    assert set(answer["flags"][0]) == {"check", "quality", "start", "end", "reason"}
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"{API}/runs/{BAD}/quality/", {"format": "csv"}).content.decode())))  # fmt: skip
    assert {row["check"] for row in rows} == {f["check"] for f in answer["flags"]}
    alarms = client.get(f"{API}/alarms/", {"run_number": BAD}).json()["results"]
    assert {a["check"] for a in alarms} == {"StfSequence"}
    assert alarms[0]["cleared_at"] is not None  # the run ended
    assert client.get(f"{API}/alarms/", {"active": "true"}).json()["results"] == []
    assert client.get(f"{API}/runs/999/quality/").status_code == 404

    Alarm.objects.filter(run__run_number=BAD).update(cleared_at=None)  # as while it runs
    scraped = client.get("/fastmon/metrics/").content.decode()
    assert (
        f'fastmon_quality_alarms_active{{check="StfSequence",quality="bad",run="{BAD}"}} 1.0'
        in scraped
    )
    assert 'fastmon_quality_alarms_total{action="raise",check="StfSequence"}' in scraped


def now_stamp() -> str:
    return datetime.now().isoformat()  # the runner's naive local time


@pytest.mark.django_db
@override_settings(FASTMON={**settings.FASTMON, "CHECK_GRACE_S": 0, "CHECKS": [
    {"class": "fastmon.quality.builtin.StfAbsence", "max_silence_s": 0.2},
    {"class": "fastmon.quality.builtin.StfSequence"}]})  # fmt: skip
def test_nothing_fires_while_paused_or_in_standby() -> None:
    run = 100302
    ingest_message(json.dumps(example("start_run", run_id=run, timestamp=now_stamp())))
    ingest_message(stf_body("stf_gen", run, 1))
    ingest_message(json.dumps(example("pause_run", run_id=run, timestamp=now_stamp())))
    holds_for(lambda: not on_tick().evaluated and not Alarm.objects.exists(), 1.0,
              "no alarm while paused")  # fmt: skip
    ingest_message(stf_body("stf_gen", run, 3))  # a gap, unjudged
    assert not Alarm.objects.exists()
    Run.objects.filter(run_number=run).update(state="standby", substate="")
    holds_for(lambda: not on_tick().evaluated and not Alarm.objects.exists(), 0.5,
              "none in standby")  # fmt: skip

    resume = example("pause_run", msg_type="resume_run", run_id=run, substate="physics")
    ingest_message(json.dumps({**resume, "timestamp": now_stamp()}))
    wait_until(lambda: on_tick().evaluated and Alarm.objects.filter(cleared_at=None).exists(), 5,
               "a stall alarm once running again")  # fmt: skip
    assert set(Alarm.objects.values_list("check_name", flat=True)) == {"StfAbsence"}
    ingest_message(stf_body("stf_gen", run, 4))
    bad = QualityFlag.objects.filter(quality="bad", end=None)
    assert list(bad.values_list("check_name", flat=True)) == ["StfSequence"]  # judged now


@pytest.mark.django_db(transaction=True)
def test_a_stall_while_running_raises_an_alarm_through_the_broker_in_time(
    start_process, stomp_address, publish, unique_topic: str
) -> None:
    alarms = f"{unique_topic}.alarms"
    changes = consumer_settings(
        unique_topic, ALARM_DESTINATION=alarms, CHECK_INTERVAL_S=0.5, CHECK_GRACE_S=0,
        CHECKS=[{"class": "fastmon.quality.builtin.StfAbsence", "max_silence_s": 2}],
    )  # fmt: skip
    run = 100303
    bodies = [example("start_run", run_id=run, timestamp=now_stamp())] + [
        stf_example("stf_gen", run, n) for n in (1, 2, 3)
    ]
    with subscribed(stomp_address, broker_login(), alarms) as (_, collector):
        consumer = start_process(changes)
        consumer.wait_for_log(f"subscribed to {unique_topic}")
        publish(unique_topic, [json.dumps(body) for body in bodies])
        [raised] = collector.json_bodies(1, timeout=2 + 0.5 + 5, settle=0.2)
        assert (raised["msg_type"], raised["action"], raised["check"]) == (
            "fastmon_alarm", "raise", "StfAbsence")  # fmt: skip
        assert raised["run_id"] == run and "while running" in raised["reason"]

        publish(unique_topic, [stf_body("stf_gen", run, 4)])
        [cleared] = collector.json_bodies(1, timeout=10, settle=0.2)
        assert (cleared["action"], cleared["alarm_id"]) == ("clear", raised["alarm_id"])


@pytest.mark.django_db
def test_an_end_run_judges_the_stfs_of_its_own_batch_and_what_grace_held_back() -> None:
    from fastmon.inbound.messages import InboundMessage
    from fastmon.ingest.pipeline import ingest_batch

    run = 100304
    bodies = run_messages(run, [1, 2, 4], total=4, at=now_stamp())  # all within the grace
    ingest_batch(InboundMessage(body) for body in bodies)  # one batch: STFs are applied last
    flags = {f["check"]: f for f in run_quality(Run.objects.get(run_number=run))["flags"]}
    assert flags["EndRunTotal"]["reason"] == "end_run says 4 STFs, 3 seen"
    assert "1 missing (3)" in flags["StfSequence"]["reason"]
    assert flags["StfSequence"]["quality"] == "bad"


@pytest.mark.django_db
def test_an_oversize_stf_is_an_outlier_when_its_stf_ready_gives_the_size() -> None:
    run = 100305
    for n in range(1, 27):
        size = 2_000_000 * (10 if n == 26 else 1)
        ingest_message(stf_body("stf_gen", run, n))
        ready = stf_body("stf_ready", run, n, size_bytes=size)
        ingest_message(ready)
        ingest_message(ready, {"redelivered": "true"})  # its size counts once
    state = CheckState.objects.get(run__run_number=run, check_name="StfSizeOutlier")
    assert state.quality == "medium" and f"{stf_name(run, 26)} 20,000,000 B" in state.reason
    assert len(state.memory["sizes"]) == 26


class Broken(Check):
    """A site's check with a bug."""

    def on_stfs(self, memory: dict, run: Any, stfs: Any) -> None:
        memory["touched"] = True
        raise RuntimeError("a bug")


@pytest.mark.django_db
def test_a_failing_check_is_logged_and_stops_neither_ingest_nor_the_others(caplog) -> None:
    checks = [{"class": f"{__name__}.Broken"},
              {"class": "fastmon.quality.builtin.StfSequence"}]  # fmt: skip
    with override_settings(FASTMON={**settings.FASTMON, "CHECKS": checks}):
        for body in run_messages(100306, [1, 3], total=2):
            assert ingest_message(body).outcome == "stored"
    assert "quality check Broken failed on run 100306" in caplog.text
    assert CheckState.objects.get(check_name="Broken").memory == {}  # left as it was
    assert CheckState.objects.get(check_name="StfSequence").quality == "bad"


@pytest.mark.django_db
@override_settings(FASTMON={**settings.FASTMON, "CHECK_GRACE_S": 5})
def test_the_grace_period_runs_on_fastmons_clock_not_the_daqs() -> None:
    """A runner east of UTC stamps its naive local time, read as UTC: hours ahead."""
    run = 100307
    ahead = (datetime.now() + timedelta(hours=5)).isoformat()
    ingest_message(json.dumps(example("start_run", run_id=run, timestamp=ahead)))
    Run.objects.filter(run_number=run).update(state_seen_at=timezone.now() - timedelta(seconds=6))
    announce("stf_gen", run, 1, 3)
    assert CheckState.objects.get(run__run_number=run, check_name="StfSequence").quality == "bad"


@pytest.mark.django_db
@override_settings(FASTMON={**settings.FASTMON, "CHECK_GRACE_S": 0, "CHECKS": [
    {"class": "fastmon.quality.builtin.SliceFailures"}]})  # fmt: skip
def test_failed_slices_of_a_running_run_raise_an_alarm_on_the_tick() -> None:
    from fastmon.models import Slice

    run = 100308
    ingest_message(json.dumps(example("start_run", run_id=run, timestamp=now_stamp())))
    stored = Run.objects.get(run_number=run)
    for n in range(6):
        Slice.objects.create(tf_filename=f"slice-{n}", run=stored, completed_at=timezone.now(),
                             status="failed" if n < 3 else "done")  # fmt: skip
    assert on_tick().evaluated == 1
    alarm = Alarm.objects.get(check_name="SliceFailures")
    assert alarm.reason.startswith("3 of 6 slices failed")


@pytest.mark.django_db
@override_settings(FASTMON={
    **settings.FASTMON, "CHECK_GRACE_S": 0, "CHECK_IDLE_S": 60, "CHECK_TICK_MAX_RUNS": 5,
    "ALARM_COALESCE_RUNS": 3,
    "CHECKS": [{"class": "fastmon.quality.builtin.StfAbsence", "max_silence_s": 1}]})  # fmt: skip
def test_a_tick_judges_the_most_recently_active_runs_up_to_its_bound() -> None:
    """Twelve runs announced that send nothing, three idle past CHECK_IDLE_S, one with STFs:
    the tick judges the one with STFs and the four latest of the twelve; one alarm message
    raises the four's absence."""
    flood, idle, live = range(100400, 100412), range(100420, 100423), 100430
    for run in [*flood, *idle, live]:
        ingest_message(json.dumps(example("start_run", run_id=run, timestamp=now_stamp())))
    now = timezone.now()
    for n, run in enumerate(flood):
        Run.objects.filter(run_number=run).update(state_seen_at=now - timedelta(seconds=10 + n))
    Run.objects.filter(run_number__in=idle).update(state_seen_at=now - timedelta(seconds=61))
    Run.objects.filter(run_number=live).update(state_seen_at=now - timedelta(seconds=100))
    announce("stf_gen", live, 1)

    ticked = on_tick()
    assert (ticked.evaluated, ticked.active, ticked.left_out) == (5, 13, 8)
    judged = CheckState.objects.filter(check_name="StfAbsence")
    assert set(judged.values_list("run__run_number", "quality")) == {
        (live, "good"), *((run, "bad") for run in flood[:4])}  # fmt: skip
    [message] = alarms_sent_together()
    assert (message["action"], message["run_id"], message["alarm_id"]) == ("raise", None, None)
    assert message["runs"] == list(flood[:4]) and len(message["alarm_ids"]) == 4
    assert message["reason"].endswith(f"(run {flood[0]} and 3 more)")


def alarms_sent_together() -> list[dict[str, Any]]:
    rows = OutboxMessage.objects.filter(msg_type="fastmon_alarm").order_by("id")
    return [json.loads(body) for body in rows.values_list("body", flat=True)]


@pytest.mark.django_db
@override_settings(FASTMON={**settings.FASTMON, "CHECK_GRACE_S": 0, "CHECKS": [
    {"class": "fastmon.quality.builtin.DeadLetterRate", "max_count": 3}]})  # fmt: skip
def test_dead_letters_count_for_the_run_their_body_names_and_those_naming_none_for_all() -> None:
    named, other = 100440, 100441
    for run in (named, other):
        ingest_message(json.dumps(example("start_run", run_id=run, timestamp=now_stamp())))
    for n in range(3):  # an STF announcement without a file name: dead-lettered, its run named
        assert ingest_message(json.dumps({"msg_type": "stf_ready", "run_id": named, "n": n})
                              ).outcome == "dead_lettered"  # fmt: skip
    mistyped = {"msg_type": "stf_gen", "filename": stf_name(named, 7), "sequence": "seven"}
    assert ingest_message(json.dumps(mistyped)).outcome == "dead_lettered"  # named by its file
    ingest_message("<not json>")  # names no run: counts for both
    ingest_message("<not json>")  # the same body again: one letter, counted once
    assert DeadLetter.objects.count() == 5

    assert on_tick().evaluated == 2
    verdicts = dict(CheckState.objects.values_list("run__run_number", "reason"))
    assert verdicts == {named: "5 dead letters in the last 60 s",
                        other: "1 dead letters in the last 60 s"}, verdicts  # fmt: skip
    assert list(Alarm.objects.values_list("run__run_number", flat=True)) == [named]
