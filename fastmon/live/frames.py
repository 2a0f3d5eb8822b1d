"""The live frames: every event kind's payload is composed here, and ``event_frame`` is the
shape pages, the API's /events and ``fastmon_tail --json`` see."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastmon.conf import fastmon_settings
from fastmon.inbound.schema import SliceResultMessage
from fastmon.models import Alarm, DeadLetter, LiveEvent, TfSample

if TYPE_CHECKING:
    from fastmon.inbound.schema import ProcessingReading, StfMessage


def event_frame(event: LiveEvent) -> dict[str, Any]:
    """One stored event as clients see it."""
    return {
        "sequence": event.pk,
        "kind": event.kind,
        "run_number": event.run_number,
        "payload": event.payload,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
    }


def run_event(run_number: int, state: str | None, substate: str | None, msg_type: str) -> LiveEvent:
    """A run created, or its state changed (state None: created by an STF before its run)."""
    return LiveEvent(
        kind=LiveEvent.Kind.RUN,
        run_number=run_number,
        payload={"run_number": run_number, "state": state, "substate": substate,
                 "msg_type": msg_type},
    )  # fmt: skip


def stf_events(announcements: Iterable[StfMessage]) -> list[LiveEvent]:
    """One event per run for a batch's new or changed STFs: the pages' table and rate."""
    by_run: dict[int | None, list[dict[str, Any]]] = {}
    for message in announcements:
        by_run.setdefault(message.run_number, []).append({
            "stf_filename": message.filename,
            "sequence": message.sequence_number,
            "msg_type": message.msg_type,
            "state": message.state,
            "substate": message.substate,
            "size_bytes": message.file_size,
        })  # fmt: skip
    return [
        LiveEvent(kind=LiveEvent.Kind.STF, run_number=run, payload={"stfs": stfs})
        for run, stfs in by_run.items()
    ]


def tf_samples_event(samples: list[TfSample]) -> LiveEvent:
    """One event per STF, carrying all the samples registered for it."""
    stf = samples[0].stf
    return LiveEvent(
        kind=LiveEvent.Kind.TF_SAMPLES,
        run_number=stf.run.run_number if stf.run else None,
        payload={
            "stf_filename": stf.stf_filename,
            "stf_received_at": stf.received_at.isoformat() if stf.received_at else None,
            "tf_count": stf.tf_count or fastmon_settings.DEFAULT_TF_COUNT,
            "samples": [
                {
                    "tf_filename": sample.tf_filename,
                    "tf_first": sample.tf_first,
                    "tf_last": sample.tf_last,
                    "tf_count": sample.tf_count,
                    "file_size_bytes": sample.file_size_bytes,
                    "size_estimated": sample.size_estimated,
                    "status": sample.status,
                    "created_at": sample.created_at.isoformat(),
                }
                for sample in samples
            ],
        },
    )


def processing_events(messages: Iterable[ProcessingReading]) -> list[LiveEvent]:
    """One event per run for a batch's fast-processing messages: how many slices were queued
    and answered (done, failed); pages read the run's processing figures again."""
    by_run: dict[int, dict[str, int]] = {}
    for message in messages:
        counts = by_run.setdefault(message.run_id, {})
        if isinstance(message, SliceResultMessage):
            kind = "done" if message.done else "failed"
        else:
            kind = "queued" if message.msg_type == "slice" else "workers"
        counts[kind] = counts.get(kind, 0) + 1
    return [
        LiveEvent(kind=LiveEvent.Kind.PROCESSING, run_number=run, payload={"slices": counts})
        for run, counts in by_run.items()
    ]


def dead_letter_event(letter: DeadLetter) -> LiveEvent:
    return LiveEvent(
        kind=LiveEvent.Kind.DEAD_LETTER,
        payload={"id": letter.pk, "reason_code": letter.reason_code, "reason": letter.reason,
                 "msg_type": letter.msg_type, "destination": letter.destination},
    )  # fmt: skip


def alarm_event(
    run_number: int | None, message: str, severity: str = "error", **details: Any
) -> LiveEvent:
    """An alarm for the pages: sampling given up (``stf_filename``), a quality alarm raised or
    cleared (``action``, ``check``, ``alarm_id``)."""
    return LiveEvent(
        kind=LiveEvent.Kind.ALARM,
        run_number=run_number,
        payload={"severity": severity, "message": message, **details},
    )


def quality_alarm_event(run_number: int | None, alarm: Alarm, action: str) -> LiveEvent:
    """A quality alarm raised, cleared or acknowledged (``action``), shown beside the other
    alarms; its run's page redraws its alarms (fastmon's own alarms: no run, no id)."""
    message = {
        "raise": alarm.reason,
        "clear": f"cleared: {alarm.clear_reason}",
        "acknowledge": f"acknowledged by {alarm.acknowledged_by}",
    }[action]
    severity = "error" if alarm.quality == "bad" else "warning"
    return alarm_event(
        run_number, f"{alarm.check_name}: {message}",
        severity="info" if action == "acknowledge" else severity,
        action=action, check=alarm.check_name, alarm_id=alarm.pk,
    )  # fmt: skip


def quality_event(
    run_number: int, overall: str, current: str, moved: dict[str, dict[str, str]]
) -> LiveEvent:
    """Checks' verdicts on a run changed (``moved``: by check, its quality and reason); pages
    show the run's overall quality and its quality now."""
    return LiveEvent(
        kind=LiveEvent.Kind.QUALITY,
        run_number=run_number,
        payload={"overall": overall, "current": current, "checks": moved},
    )


def content_event(run_number: int, summary: dict[str, Any]) -> LiveEvent:
    """A run's histograms were merged: its cycle and counts, and the histograms' names (not
    their bins), so pages fetch what they show."""
    return LiveEvent(kind=LiveEvent.Kind.CONTENT, run_number=run_number, payload=summary)
