"""The shifter's done-when (the issue), through the real broker, the simulator's files and
run_fastmon's own sampler and merger: a reference run compared with itself is good and a run
with a gain fault is bad on ADC only; a hot channel raises a fastmon_alarm on the alarm topic
within 15 s of its STF's announcement and clears once the moving window has let it go; a dead
source and 5 % corrupt TFs turn MissingSources and CorruptTFs bad; nothing fires in standby."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from fastmon.content.detectors import detector_map
from fastmon.models import Alarm, CheckState, ContentPartial, Run, RunContent, StfFile
from fastmon.quality.contentchecks import content_quality
from fastmon.simulator.detector_faults import parse_detector_fault
from fastmon.simulator.files import write_stf
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import example, stf_body, stf_name
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

StartProcess = Callable[..., ServiceProcess]
Publish = Callable[[str, Iterable[str]], None]
HOT = (305, 11)  # BEMC's source and channel the hot-channel fault heats


def start_consumer(
    start_process: StartProcess, topic: str, data: Path, **changes
) -> ServiceProcess:
    """run_fastmon sampling in its own sampler, merging every ``CONTENT_CYCLE_S``, its
    alarms on ``<topic>.alarms``."""
    consumer = start_process(consumer_settings(
        topic, SAMPLING_ENABLED=True, SAMPLING_WORKERS="run_fastmon", DATA_ROOTS=[str(data)],
        ALARM_DESTINATION=f"{topic}.alarms", **changes,
    ))  # fmt: skip
    consumer.wait_for_log(f"subscribed to {topic}")
    return consumer


def simulate(start_process: StartProcess, topic: str, data: Path, run: int, stfs: int,
             rate: float, *faults: str) -> ServiceProcess:  # fmt: skip
    """One run of the simulator's ETF1 files (small ones: 50 TFs of about 5 kB) announced at
    ``rate`` STFs a second, with detector ``faults``."""
    argv = ["manage.py", "fastmon_simulate", "--destination", topic, "--runs", "1",
            "--run", str(run), "--stfs", str(stfs), "--rate", str(rate), "--data-dir", str(data),
            "--stf-size", "256K", "--tf-count", "50"]  # fmt: skip
    for fault in faults:
        argv += ["--fault", fault]
    return start_process({}, command="fastmon_simulate", argv=argv)


def wait_merged(run: int, stfs: int, consumer: ServiceProcess, timeout: float = 60) -> None:
    """Every STF of ``run`` sampled and every partial folded."""
    wait_until(lambda: StfFile.objects.filter(run__run_number=run, status="sampled").count()
               == stfs, timeout, f"{stfs} STFs of run {run} sampled",
               context=consumer.output)  # fmt: skip
    wait_until(lambda: not ContentPartial.objects.exists(), 30, "the partials merged",
               context=consumer.output)  # fmt: skip


def verdicts(run: int, detector: str, check: str) -> dict:
    return content_quality(Run.objects.get(run_number=run))[detector][check]


def test_a_gain_fault_is_bad_on_adc_against_the_reference_and_the_reference_run_good(
    start_process: StartProcess, unique_topic: str, tmp_path: Path, client
) -> None:
    clean, gained = 100971, 100972
    consumer = start_consumer(start_process, unique_topic, tmp_path, CONTENT_CYCLE_S=0.5)
    client.force_login(User.objects.create_user("shifter"))
    first = simulate(start_process, unique_topic, tmp_path, clean, 80, 10)
    # Made the reference while it runs (with enough TFs for every histogram to be compared):
    # its later cycles are compared with this copy.
    wait_until(lambda: RunContent.objects.filter(run__run_number=clean,
                                                 summary__tfs_decoded__gte=150).exists(),
               30, "run X merged with 150 TFs", context=consumer.output)  # fmt: skip
    answer = client.post("/fastmon/api/references/", {"detector": "BEMC", "run_number": clean},
                         content_type="application/json")  # fmt: skip
    assert answer.status_code == 201, answer.content
    assert first.wait(60) == 0, first.output()
    wait_merged(clean, 80, consumer)
    itself = verdicts(clean, "BEMC", "ReferenceComparison")
    assert itself["quality"] == "good", itself
    assert {h["quality"] for h in itself["histograms"].values()} == {"good"}

    assert simulate(start_process, unique_topic, tmp_path, gained, 120, 50,
                    "gain@0:BEMC:1.3").wait(60) == 0  # fmt: skip
    wait_merged(gained, 120, consumer)
    compared = verdicts(gained, "BEMC", "ReferenceComparison")
    assert compared["quality"] == "bad", compared
    by_histogram = {name: h["quality"] for name, h in compared["histograms"].items()}
    assert by_histogram.pop("BEMC/adc") == "bad"
    assert set(by_histogram.values()) == {"good"}, compared
    assert verdicts(gained, "SVT", "ReferenceComparison")["reason"] == "SVT: no reference"


def test_a_hot_channel_raises_an_alarm_within_15_s_and_clears_when_the_window_lets_it_go(
    start_process: StartProcess, stomp_address, unique_topic: str, tmp_path: Path
) -> None:
    run = 100973
    alarms = f"{unique_topic}.alarms"
    with subscribed(stomp_address, broker_login(), alarms) as (_, collector):
        consumer = start_consumer(start_process, unique_topic, tmp_path, CONTENT_CYCLE_S=5.0,
                                  CONTENT_WINDOW_CYCLES=2)  # fmt: skip
        simulator = simulate(start_process, unique_topic, tmp_path, run, 400, 10,
                             f"hot_channel@40-120:BEMC:{HOT[0]}:{HOT[1]}")  # fmt: skip
        hot = []
        for frame in iter(lambda: collector.frames_received(1, timeout=60, settle=0), []):
            body = json.loads(frame[0].body)
            if body["check"] == "HotChannels":
                hot.append((time.time(), body))
            if len(hot) == 2:
                break
        ended = simulator.process.poll() is not None
        assert simulator.wait(60) == 0, simulator.output()
    assert len(hot) == 2, consumer.output()
    (raised_at, raised), (_, cleared) = hot
    announced = StfFile.objects.get(run__run_number=run, sequence=40).broker_at
    assert raised["action"] == "raise" and raised["run_id"] == run
    assert f"source {HOT[0]}" in raised["reason"] and f"channel {HOT[1]}" in raised["reason"]
    assert raised_at - announced.timestamp() <= 15, (raised_at, announced)
    # Cleared by the check, while the run still ran (not by its end_run clearing everything).
    assert (cleared["action"], cleared["alarm_id"]) == ("clear", raised["alarm_id"])
    assert not ended and "ended" not in cleared["reason"], cleared
    assert StfFile.objects.filter(run__run_number=run).count() == 400


def test_a_dead_source_and_corrupt_tfs_turn_their_checks_bad(
    start_process: StartProcess, unique_topic: str, tmp_path: Path
) -> None:
    run = 100974
    consumer = start_consumer(start_process, unique_topic, tmp_path, CONTENT_CYCLE_S=0.5,
                              CHECK_GRACE_S=0)  # fmt: skip
    simulator = simulate(start_process, unique_topic, tmp_path, run, 60, 10,
                         "dead_source@1:BEMC:303", "corrupt@1:0.05")  # fmt: skip
    wait_until(lambda: Alarm.objects.filter(run__run_number=run, check_name="MissingSources")
               .exists() and Alarm.objects.filter(run__run_number=run, check_name="CorruptTFs")
               .exists(), 60, "both alarms", context=consumer.output)  # fmt: skip
    assert simulator.wait(60) == 0
    missing = verdicts(run, "BEMC", "MissingSources")
    assert missing["quality"] == "bad" and "303" in missing["reason"], missing
    assert verdicts(run, "SVT", "MissingSources")["quality"] == "good"
    corrupt = CheckState.objects.get(run__run_number=run, check_name="CorruptTFs")
    assert corrupt.quality == "bad" and "corrupt" in corrupt.reason, corrupt.reason


def test_nothing_fires_in_standby_and_the_same_fault_fires_once_running(
    start_process: StartProcess, publish: Publish, stomp_address, unique_topic: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    run = 100975
    hot = [parse_detector_fault(f"hot_channel@0:BEMC:{HOT[0]}:{HOT[1]}", detector_map())]

    def ready(sequence: int, substate: str) -> str:
        path = tmp_path / stf_name(run, sequence)
        written = write_stf(path, 256 << 10, tf_count=50, seed=sequence, sequence=sequence,
                            faults=hot)  # fmt: skip
        return stf_body("stf_ready", run, sequence, file_url=path.as_uri(), substate=substate,
                        size_bytes=written.size, checksum=written.checksum, tf_count=50,
                        tf_offsets=list(written.tf_offsets))  # fmt: skip

    alarms = f"{unique_topic}.alarms"
    with subscribed(stomp_address, broker_login(), alarms) as (_, collector):
        consumer = start_consumer(start_process, unique_topic, tmp_path, CONTENT_CYCLE_S=0.5,
                                  CHECK_GRACE_S=0)  # fmt: skip
        publish(unique_topic, [json.dumps(example("start_run", run_id=run)),
                               json.dumps(example("pause_run", run_id=run))]
                + [ready(n, "standby") for n in range(1, 11)])  # fmt: skip
        wait_merged(run, 10, consumer)
        time.sleep(1.5)  # three more cycles
        judged = CheckState.objects.get(run__run_number=run, check_name="HotChannels")
        assert judged.memory["detectors"]["BEMC"]["quality"] == "bad"  # judged, not fired
        assert judged.quality == "null" and not Alarm.objects.filter(run__run_number=run)
        assert collector.frames_received(1, timeout=1, settle=0) == []

        resume = example("pause_run", run_id=run, msg_type="resume_run", substate="physics")
        publish(unique_topic, [json.dumps(resume)] + [ready(n, "physics") for n in (11, 12)])
        [raised] = collector.json_bodies(1, timeout=20, settle=0.5)
    assert (raised["check"], raised["action"]) == ("HotChannels", "raise")
