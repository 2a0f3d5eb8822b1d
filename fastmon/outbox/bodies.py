"""Every body fastmon sends: to the broker (``tf_file_registered``, ``fastmon_alarm``, control
replies), to
swf-monitor (its fastmon-files rows, agent heartbeats). ``docs/wire-formats.md`` describes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import Alarm, Run, StfFile, TfSample
from fastmon.models.quality import Quality


def tf_file_registered_bodies() -> Callable[[StfFile, TfSample], dict[str, Any]]:
    """A maker of the spec's ``tf_file_registered`` bodies, with the settings read once.

    Never ``agent_name`` beside ``status`` in a body: swf-monitor would take it for an agent
    heartbeat.
    """
    agent = fastmon_settings.AGENT_NAME
    namespace = fastmon_settings.NAMESPACE

    def body(stf: StfFile, sample: TfSample) -> dict[str, Any]:
        run = stf.run
        created = timezone.localtime(sample.created_at).replace(tzinfo=None)
        return {
            "msg_type": "tf_file_registered",
            "namespace": namespace or (run.namespace if run else "") or None,
            "run_id": run.run_number if run else None,
            "execution_id": (run.execution_id if run else "") or None,
            "processed_by": agent,
            "sender": agent,
            "tf_file_id": str(sample.tf_file_id),
            "tf_filename": sample.tf_filename,
            "tf_first": sample.tf_first,
            "tf_last": sample.tf_last,
            "tf_count": sample.tf_count,
            "file_size_bytes": sample.file_size_bytes,
            "stf_filename": stf.stf_filename,
            "status": sample.status,
            "timestamp": created.isoformat(),
        }

    return body


def fastmon_file_body(stf: StfFile, sample: TfSample) -> dict[str, Any]:
    """The POST body of swf-monitor's /api/fastmon-files/: its FastMonFile fields, the checksum
    in its own column (swf-monitor makes the tf_file_id)."""
    return {
        "stf_file": stf.stf_filename,
        "tf_filename": sample.tf_filename,
        "tf_first": sample.tf_first,
        "tf_last": sample.tf_last,
        "tf_count": sample.tf_count,
        "file_size_bytes": sample.file_size_bytes,
        "checksum": sample.checksum or None,
        "status": "registered",
        "metadata": dict(sample.metadata),
    }


def fastmon_file_change(sample: TfSample) -> dict[str, Any]:
    """The PATCH body of a sample's status change, for its row in swf-monitor."""
    return {"status": sample.status, "metadata": dict(sample.metadata)}


def control_reply_body(request: str, result: dict[str, Any]) -> str:
    """The answer to a ``subscribe`` or ``unsubscribe`` request, sent to its reply-to."""
    return json.dumps({"msg_type": f"{request}_reply", **result})


def heartbeat_payload(
    *,
    agent_name: str,
    connected: bool,
    state: str,
    namespace: str | None,
    pid: int,
    hostname: str,
    description: str = "",
) -> dict[str, Any]:
    """The testbed agents' heartbeat body, field for field. Without the broker fastmon ingests
    nothing: that is a WARNING, since it reconnects by itself. The last one says EXITED twice,
    as a testbed agent's does (``testbed status`` leaves out the agents EXITED)."""
    status = "EXITED" if state == "EXITED" else "OK" if connected else "WARNING"
    return {
        "instance_name": agent_name,
        "agent_type": "fastmon",
        "status": status,
        "description": description,
        "mq_connected": connected,
        "pid": pid,
        "hostname": hostname,
        "operational_state": state,
        "namespace": namespace,
    }


def alarm_body(action: str, alarms: Sequence[Alarm], runs: Sequence[Run]) -> dict[str, Any]:
    """``fastmon_alarm``: quality alarms raised or cleared, for shifters' tools and an
    Alertmanager bridge. One run's alarm names its run and alarm (``run_id``, ``alarm_id``);
    several runs' alarms of one check and namespace raised or cleared at once are one body,
    naming them all in ``runs`` and ``alarm_ids`` (``run_id`` and ``alarm_id`` null); fastmon's
    own alarms name no run and have no id."""
    first = alarms[0]
    one = runs[0] if len(runs) == 1 else None
    more = f" (run {runs[0].run_number} and {len(runs) - 1} more)" if len(runs) > 1 else ""
    cleared = [alarm.cleared_at for alarm in alarms if alarm.cleared_at]
    return {
        "msg_type": "fastmon_alarm",
        "action": action,
        "alarm_id": first.pk if one else None,
        "namespace": fastmon_settings.NAMESPACE or (runs[0].namespace if runs else "") or None,
        "run_id": one.run_number if one else None,
        "runs": [run.run_number for run in runs],
        "alarm_ids": [alarm.pk for alarm in alarms if alarm.pk is not None],
        "check": first.check_name,
        "quality": max((Quality(a.quality) for a in alarms), key=lambda q: q.severity).value,
        "reason": first.reason + more,
        "raised_at": min(alarm.raised_at for alarm in alarms).isoformat(),
        "cleared_at": max(cleared).isoformat() if cleared else None,
        "clear_reason": (first.clear_reason + more) if first.clear_reason else None,
        "sender": fastmon_settings.AGENT_NAME,
        "timestamp": timezone.now().isoformat(),
    }
