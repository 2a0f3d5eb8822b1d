"""Run lifecycle messages (``run_imminent`` ... ``end_run``) applied to their ``Run``."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.database.rows import aware, set_changed
from fastmon.inbound.bounds import bounded
from fastmon.inbound.schema import RunMessage
from fastmon.live.events import record_live_events
from fastmon.live.frames import run_event
from fastmon.models import Run
from fastmon.processing.parameters import fast_processing_parameters

ENDED = "ended"
_RUN_STAMPS = {"run_imminent": "imminent_at", "start_run": "started_at", "end_run": "ended_at"}


def apply_run_message(message: RunMessage) -> str:
    """Create or update the run; a late, older message never overwrites a newer state."""
    run, created = Run.objects.select_for_update().get_or_create(run_number=message.run_id)
    timestamp = aware(message.timestamp)
    values: dict[str, Any] = {}
    if message.namespace:
        values["namespace"] = message.namespace
    if message.execution_id:
        values["execution_id"] = message.execution_id
    if message.run_conditions:
        merged = {**run.run_conditions, **message.run_conditions}
        values["run_conditions"] = bounded(merged, fastmon_settings.STORED_JSON_MAX_BYTES)
    if message.total_stf_files is not None:
        values["total_stf_files"] = message.total_stf_files
    if params := fast_processing_parameters(message.workflow_params):
        values["fast_processing"] = {**run.fast_processing, **params}
    stamp = _RUN_STAMPS.get(message.msg_type)
    if stamp and timestamp:
        values[stamp] = timestamp
    # Messages can arrive out of order (redelivery): an older state never overwrites a newer one.
    newer = timestamp is None or run.state_changed_at is None or timestamp >= run.state_changed_at
    if message.msg_type == "end_run" and not message.state:
        # The runner's end_run carries no state: it ends the run (swf-monitor's RunState says
        # "ended" too), or the run would show its last state for ever.
        stamped: tuple[str, str] | None = (ENDED, "")
    elif message.state or message.substate:
        # A message that leaves one of the two out keeps what is known of it.
        stamped = (message.state or run.state, message.substate or run.substate)
    else:
        stamped = None
    if stamped and newer:
        values["state"], values["substate"] = stamped
        values["state_changed_at"] = timestamp or run.state_changed_at
        if stamped != (run.state, run.substate):
            values["state_seen_at"] = timezone.now()
    changed = set_changed(run, values)
    if changed:
        run.save(update_fields=[*changed, "updated_at"])
    if created or {"state", "substate"} & set(changed):
        record_live_events([run_event(run.run_number, run.state, run.substate, message.msg_type)])
    return f"run {run.run_number} {'created' if created else 'updated'} by {message.msg_type}"
