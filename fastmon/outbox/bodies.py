"""Every body fastmon sends: to the broker (``tf_file_registered``, ``fastmon_alarm``, control
replies), to
swf-monitor (its fastmon-files rows, agent heartbeats). ``docs/wire-formats.md`` describes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import Alarm, Run, StfFile, TfSample


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


def alarm_body(run: Run, alarm: Alarm, action: str) -> dict[str, Any]:
    """``fastmon_alarm``: a quality alarm raised or cleared, for shifters' tools and an
    Alertmanager bridge."""
    agent = fastmon_settings.AGENT_NAME
    return {
        "msg_type": "fastmon_alarm",
        "action": action,
        "alarm_id": alarm.pk,
        "namespace": fastmon_settings.NAMESPACE or run.namespace or None,
        "run_id": run.run_number,
        "check": alarm.check_name,
        "quality": alarm.quality,
        "reason": alarm.reason,
        "raised_at": alarm.raised_at.isoformat(),
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "clear_reason": alarm.clear_reason or None,
        "sender": agent,
        "timestamp": timezone.now().isoformat(),
    }
