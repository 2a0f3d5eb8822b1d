"""Alarms: raised when a check turns ALARM_LEVEL or worse, cleared when it recovers or its run
ends, at most one open per run and check. Each raise and clear goes out through the outbox as
``fastmon_alarm`` (to ALARM_DESTINATION), live to the pages, and into the metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from django.db import transaction
from prometheus_client.core import GaugeMetricFamily

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.live.events import record_live_events
from fastmon.live.frames import quality_alarm_event
from fastmon.models import Alarm, OutboxMessage, Run
from fastmon.outbox.bodies import alarm_body
from fastmon.quality.verdicts import Quality


def follow(
    run: Run, check: str, before: Quality, after: Quality, reason: str, at: datetime
) -> None:
    """A check's quality moved from ``before`` to ``after``: raise or clear as that crosses
    ALARM_LEVEL."""
    level = Quality(fastmon_settings.ALARM_LEVEL).severity
    if after.severity >= level > before.severity:
        raise_alarm(run, check, after, reason, at)
    elif before.severity >= level > after.severity:
        clear_alarms(run, f"{check} is {after.value}: {reason}", at, check=check)


def raise_alarm(run: Run, check: str, quality: Quality, reason: str, at: datetime) -> None:
    if Alarm.objects.filter(run=run, check_name=check, cleared_at=None).exists():
        return  # raised already: one open alarm per run and check
    alarm = Alarm.objects.create(
        run=run, check_name=check, quality=quality, reason=reason, raised_at=at
    )
    _announce(run, alarm, "raise")


def clear_alarms(run: Run, reason: str, at: datetime, check: str | None = None) -> None:
    """Clear the run's open alarms (of one check, or all of them)."""
    open_alarms = Alarm.objects.filter(run=run, cleared_at=None).select_for_update()
    for alarm in open_alarms.filter(check_name=check) if check else open_alarms:
        alarm.cleared_at, alarm.clear_reason = at, reason
        alarm.save(update_fields=["cleared_at", "clear_reason"])
        _announce(run, alarm, "clear")


def _announce(run: Run, alarm: Alarm, action: str) -> None:
    OutboxMessage.objects.create(
        destination=fastmon_settings.ALARM_DESTINATION,
        msg_type="fastmon_alarm",
        subject=f"{run.run_number}/{alarm.check_name}",
        body=json.dumps(alarm_body(run, alarm, action)),
    )
    record_live_events([quality_alarm_event(run.run_number, alarm, action)])
    counted = metrics.ALARMS.labels(check=alarm.check_name, action=action)
    transaction.on_commit(counted.inc)


class ActiveAlarms:
    """``fastmon_quality_alarms_active``, read from the database at each scrape: what an
    Alertmanager rule routes (every process sees the same rows; nothing to add up)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "fastmon_quality_alarms_active",
            "Quality alarms open now, by run and check (1 while open).",
            labels=["run", "check", "quality"],
        )
        open_alarms = Alarm.objects.filter(cleared_at=None).values_list(
            "run__run_number", "check_name", "quality"
        )
        for run, check, quality in open_alarms[:1000]:
            family.add_metric([str(run), check, quality], 1)
        yield family
