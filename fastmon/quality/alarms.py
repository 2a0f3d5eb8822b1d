"""Alarms: raised when a check turns ALARM_LEVEL or worse, cleared when it recovers or its run
ends, at most one open per run and check. Each raise and clear goes out through the outbox as
``fastmon_alarm`` (to ALARM_DESTINATION), live to the pages, and into the metrics.

What one evaluation raises and clears is sent together (``AlarmNews``): the alarms of one check
and namespace that ALARM_COALESCE_RUNS runs or more raise (or clear) at once go out as one
message naming them all, so a flood of runs is a message per check, not one per run. fastmon's
own alarms (its consumer cut off from the broker) belong to no run: sent the same way, with no
row."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import partial

from django.db import transaction
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.live.events import record_live_events
from fastmon.live.frames import quality_alarm_event
from fastmon.models import Alarm, OutboxMessage, Run
from fastmon.outbox.bodies import alarm_body
from fastmon.quality.verdicts import Quality


class AlarmNews:
    """The raises and clears of one evaluation, in order, kept until ``send``."""

    def __init__(self) -> None:
        self.items: list[tuple[Run | None, Alarm, str]] = []

    def send(self) -> None:
        """Each (check, namespace, action) with ALARM_COALESCE_RUNS alarms or more as one
        message, the others one by one, in the order of each group's first (a raise goes out
        before its clear); live, one event per alarm; counted once committed."""
        if not self.items:
            return
        site, coalesce = fastmon_settings.NAMESPACE, fastmon_settings.ALARM_COALESCE_RUNS
        groups: dict[tuple[str, str, str], list[tuple[Run | None, Alarm]]] = {}
        for run, alarm, action in self.items:
            namespace = site or (run.namespace if run else "")
            groups.setdefault((alarm.check_name, namespace, action), []).append((run, alarm))
        messages = []
        for (check, _, action), members in groups.items():
            together = len(members) >= coalesce
            for part in [members] if together else [[member] for member in members]:
                runs = [run for run, _ in part if run is not None]
                body = alarm_body(action, [alarm for _, alarm in part], runs)
                messages.append(OutboxMessage(
                    destination=fastmon_settings.ALARM_DESTINATION, msg_type="fastmon_alarm",
                    subject=f"{_named(runs)}/{check}", body=json.dumps(body),
                ))  # fmt: skip
            counted = metrics.ALARMS.labels(check=check, action=action)
            transaction.on_commit(partial(counted.inc, len(members)))
        OutboxMessage.objects.bulk_create(messages)
        record_live_events([quality_alarm_event(run.run_number if run else None, alarm, action)
                            for run, alarm, action in self.items])  # fmt: skip
        self.items.clear()


def _named(runs: list[Run]) -> str:
    """An alarm message's subject names its run, how many runs, or fastmon for its own."""
    return str(runs[0].run_number) if len(runs) == 1 else f"{len(runs)} runs" if runs else "fastmon"


def follow(
    news: AlarmNews, run: Run, check: str, before: Quality, after: Quality, reason: str,
    at: datetime,
) -> None:  # fmt: skip
    """A check's quality moved from ``before`` to ``after``: raise or clear as that crosses
    ALARM_LEVEL."""
    level = Quality(fastmon_settings.ALARM_LEVEL).severity
    if after.severity >= level > before.severity:
        raise_alarm(news, run, check, after, reason, at)
    elif before.severity >= level > after.severity:
        clear_alarms(news, {run: f"{check} is {after.value}: {reason}"}, at, check=check)


def raise_alarm(
    news: AlarmNews, run: Run, check: str, quality: Quality, reason: str, at: datetime
) -> None:
    if Alarm.objects.filter(run=run, check_name=check, cleared_at=None).exists():
        return  # raised already: one open alarm per run and check
    alarm = Alarm.objects.create(
        run=run, check_name=check, quality=quality, reason=reason, raised_at=at
    )
    news.items.append((run, alarm, "raise"))


def clear_alarms(
    news: AlarmNews, reasons: Mapping[Run, str], at: datetime, check: str | None = None
) -> None:
    """Clear the open alarms of these runs, each with its reason (of one check, or all)."""
    runs = {run.pk: run for run in reasons}
    open_alarms = Alarm.objects.filter(run_id__in=runs, cleared_at=None).order_by("run", "id")
    cleared = list((open_alarms.filter(check_name=check) if check else open_alarms)
                   .select_for_update())  # fmt: skip
    for alarm in cleared:
        run = runs[alarm.run_id]
        alarm.cleared_at, alarm.clear_reason = at, reasons[run]
        news.items.append((run, alarm, "clear"))
    Alarm.objects.bulk_update(cleared, ["cleared_at", "clear_reason"])


def acknowledge(alarm_id: int, by: str, at: datetime) -> Alarm:
    """A person has seen the alarm: who and when are kept (the first to acknowledge it), and
    the pages are told, so it leaves ``fastmon_quality_alarms_active`` and shows as seen."""
    with transaction.atomic():
        alarm = Alarm.objects.select_for_update().select_related("run").get(pk=alarm_id)
        if alarm.acknowledged_at is None:
            alarm.acknowledged_at, alarm.acknowledged_by = at, by
            alarm.save(update_fields=["acknowledged_at", "acknowledged_by"])
            record_live_events([quality_alarm_event(alarm.run.run_number, alarm, "acknowledge")])
    return alarm


class OwnAlarm:
    """One of fastmon's own alarms, of no run (so no row): raised and cleared by the thread
    that watches what it is about, as a ``fastmon_alarm`` naming no run."""

    def __init__(self, check: str) -> None:
        self.check = check
        self.raised: Alarm | None = None  # unsaved, while raised

    def open(self, reason: str, at: datetime) -> None:
        if self.raised is None:
            alarm = Alarm(check_name=self.check, quality=Quality.BAD, reason=reason, raised_at=at)
            self._send(alarm, "raise")
            self.raised = alarm

    def close(self, reason: str, at: datetime) -> None:
        if self.raised is not None:
            self.raised.cleared_at, self.raised.clear_reason = at, reason
            self._send(self.raised, "clear")
            self.raised = None

    @staticmethod
    def _send(alarm: Alarm, action: str) -> None:
        news = AlarmNews()
        news.items.append((None, alarm, action))
        with transaction.atomic():
            news.send()


class ActiveAlarms:
    """``fastmon_quality_alarms_active``, read from the database at each scrape: what an
    Alertmanager rule routes (every process sees the same rows; nothing to add up). An alarm
    counts until a person acknowledges it, cleared or not: one raised and cleared in a single
    commit (a run's end) is seen too."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "fastmon_quality_alarms_active",
            "Quality alarms not yet acknowledged (open, or cleared unseen), by run and check.",
            labels=["run", "check", "quality"],
        )
        unseen = (
            Alarm.objects.filter(acknowledged_at=None)
            .values_list("run__run_number", "check_name", "quality")
            .annotate(count=Count("id"))
            .order_by()
        )
        for run, check, quality, count in unseen[:1000]:
            family.add_metric([str(run), check, quality], count)
        yield family
