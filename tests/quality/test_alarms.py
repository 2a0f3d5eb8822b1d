"""Alarms: a check's alarms of many runs of one namespace, raised or cleared by one evaluation,
are one fastmon_alarm naming them all; a run's alone is as it was; fastmon's own names no run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from fastmon.inbound.messages import InboundMessage
from fastmon.ingest.pipeline import ingest_batch
from fastmon.models import Alarm, LiveEvent, OutboxMessage
from fastmon.quality.alarms import OwnAlarm
from fastmon.testing.messages import example, stf_body

pytestmark = pytest.mark.django_db


def sent() -> list[dict[str, Any]]:
    """The fastmon_alarm bodies in the outbox, in order; those read are deleted."""
    rows = OutboxMessage.objects.filter(msg_type="fastmon_alarm").order_by("id")
    bodies = [json.loads(body) for body in rows.values_list("body", flat=True)]
    rows.delete()
    return bodies


def batch(bodies: list[str]) -> None:
    ingest_batch(InboundMessage(body) for body in bodies)


@override_settings(FASTMON={**settings.FASTMON, "ALARM_COALESCE_RUNS": 3, "CHECK_GRACE_S": 0,
    "CHECKS": [{"class": "fastmon.quality.builtin.StfSequence"},
    {"class": "fastmon.quality.builtin.EndRunTotal"}]})  # fmt: skip
def test_runs_raising_and_clearing_together_make_one_message_per_check_and_namespace() -> None:
    runs, elsewhere = [100450, 100451, 100452, 100453], 100454
    for run in [*runs, elsewhere]:
        namespace = "other" if run == elsewhere else "epic-fastmon"
        batch([json.dumps(example("start_run", run_id=run, namespace=namespace))])
    # Each run misses STF 2, all in one batch.
    batch([stf_body("stf_gen", run, n) for run in [*runs, elsewhere] for n in (1, 3)])
    raised, alone = sent()
    assert (raised["action"], raised["check"], raised["runs"]) == ("raise", "StfSequence", runs)
    assert raised["run_id"] is None and raised["alarm_id"] is None
    assert raised["namespace"] == "epic-fastmon" and len(raised["alarm_ids"]) == 4
    assert raised["reason"] == f"STF sequence: 1 missing (2) (run {runs[0]} and 3 more)"
    assert (alone["run_id"], alone["runs"], alone["namespace"]) == (elsewhere, [elsewhere], "other")
    assert alone["alarm_id"] == alone["alarm_ids"][0] and alone["reason"].endswith("missing (2)")

    # All end in one batch, their totals wrong: EndRunTotal raises, then every alarm clears.
    batch([json.dumps(example("end_run", run_id=run, total_stf_files=3)) for run in runs])
    bodies = sent()
    told = [(b["check"], b["action"], tuple(sorted(b["runs"]))) for b in bodies]
    assert told[0] == ("EndRunTotal", "raise", tuple(runs))  # a raise before its clear
    assert set(told[1:]) == {("StfSequence", "clear", tuple(runs)),
                             ("EndRunTotal", "clear", tuple(runs))}  # fmt: skip
    [cleared] = [b for b in bodies if b["check"] == "StfSequence"]
    first = cleared["runs"][0]
    assert sorted(cleared["alarm_ids"]) == raised["alarm_ids"] and cleared["cleared_at"]
    assert cleared["clear_reason"] == f"run {first} ended (run {first} and 3 more)"
    assert not Alarm.objects.filter(run__run_number__in=runs, cleared_at=None).exists()
    # Live, each run's alarm on its own (its page shows it).
    live = LiveEvent.objects.filter(kind="alarm", run_number__in=runs)
    assert live.count() == 4 * 4  # two raises and two clears each


def test_fastmons_own_alarm_names_no_run_and_is_raised_once() -> None:
    own = OwnAlarm("BrokerConnection")
    own.open("run_fastmon is not connected to the broker", timezone.now())
    own.open("still not", timezone.now())
    own.close("connected again", timezone.now())
    raised, cleared = sent()
    assert (raised["action"], raised["check"], raised["run_id"], raised["runs"]) == (
        "raise", "BrokerConnection", None, [])  # fmt: skip
    assert raised["reason"] == "run_fastmon is not connected to the broker"
    assert (cleared["action"], cleared["clear_reason"]) == ("clear", "connected again")
    assert cleared["raised_at"] == raised["raised_at"] and not Alarm.objects.exists()
    messages = LiveEvent.objects.filter(kind="alarm").values_list("payload__message", flat=True)
    assert list(messages) == ["BrokerConnection: run_fastmon is not connected to the broker",
                              "BrokerConnection: cleared: connected again"]  # fmt: skip
