"""The fast-processing stage's messages applied to ``Slice`` rows and the run: ``slice`` (a
slice queued), ``slice_result`` (a worker's answer, from a broker-side copy of the results
queue) and ``run_imminent_worker`` (the run's worker targets). Idempotent on the slice's file
name; late, repeated and out-of-order messages leave the same rows."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.database.rows import aware, set_changed
from fastmon.inbound.bounds import bounded
from fastmon.inbound.schema import (
    ProcessingReading,
    SliceMessage,
    SliceResultMessage,
    WorkerMessage,
)
from fastmon.models import Run, Slice, TfSample
from fastmon.processing.parameters import fast_processing_parameters

_SLICE_SUFFIX = re.compile(r"_slice_\d+\.tf$")
# Metrics a worker may report its processing time under, in seconds.
_TIME_METRICS = ("processing_seconds", "processing_time", "duration")
_FINAL = {Slice.Status.DONE, Slice.Status.FAILED}


def apply_processing_message(message: ProcessingReading) -> str:
    if isinstance(message, SliceMessage):
        return _apply_slice(message)
    if isinstance(message, SliceResultMessage):
        return _apply_result(message)
    return _apply_worker(message)


def sample_name(slice_name: str) -> str:
    """The TF sample a slice was cut from: ``<sample without .tf>_slice_<NNN>.tf``."""
    return _SLICE_SUFFIX.sub(".tf", slice_name)


def _slice(name: str, run_number: int) -> tuple[Slice, bool]:
    """The slice's row, locked; its run and sample are looked up (callable defaults) only when
    the row is new: a slice's later messages, the bulk of them, skip both queries."""
    sample = TfSample.objects.filter(tf_filename=sample_name(name)).values_list("pk", flat=True)
    # Named, not a literal: django-stubs check a literal's values as field values, which
    # refuses the callables get_or_create accepts.
    defaults: dict[str, Any] = {
        "run": lambda: Run.objects.get_or_create(run_number=run_number)[0],
        "sample_id": sample.first,
    }
    return Slice.objects.select_for_update().get_or_create(tf_filename=name, defaults=defaults)


def _apply_slice(message: SliceMessage) -> str:
    content = message.content
    row, created = _slice(content.tf_filename, message.run_id)
    values: dict[str, Any] = {
        "slice_id": content.slice_id,
        "tf_first": content.start,
        "tf_last": content.end,
        "tf_count": content.tf_count,
    }
    values = {name: value for name, value in values.items() if value is not None}
    if row.queued_at is None:
        values["queued_at"] = aware(message.created_at) or timezone.now()
    if content.req_id and row.req_id and content.req_id != row.req_id:
        # Queued again (a new request for the same slice): a retry, unless it is done.
        values["req_id"] = content.req_id
        if row.status != Slice.Status.DONE:
            values.update(retries=row.retries + 1, status=Slice.Status.QUEUED)
    elif content.req_id and not row.req_id:
        values["req_id"] = content.req_id
    changed = set_changed(row, values)
    if row.status in _FINAL and row.processing_seconds is None and row.queued_at:
        changed += set_changed(row, {"processing_seconds": _seconds(row, row.completed_at)})
    if changed:
        row.save(update_fields=[*set(changed), "updated_at"])
    return f"slice {row.tf_filename} {'queued' if created else 'updated'}"


def _apply_result(message: SliceResultMessage) -> str:
    outcome = message.outcome
    row, _ = _slice(outcome.tf_filename, message.run_id)
    status = Slice.Status.DONE if message.done else Slice.Status.FAILED
    completed = aware(message.content.processed_at) or aware(message.created_at) or timezone.now()
    if row.status == Slice.Status.DONE or (row.status == status and row.completed_at == completed):
        return f"slice {row.tf_filename} result again ({status})"  # late or repeated
    values: dict[str, Any] = {
        "status": status,
        "completed_at": completed,
        "worker": message.worker[:255],
        "metrics": bounded(outcome.metrics or {}, fastmon_settings.STORED_JSON_MAX_BYTES),
    }
    if outcome.slice_id is not None and row.slice_id is None:
        values["slice_id"] = outcome.slice_id
    row_metrics = outcome.metrics or {}
    reported = next((row_metrics[k] for k in _TIME_METRICS if _is_number(row_metrics.get(k))), None)
    values["processing_seconds"] = reported if reported is not None else _seconds(row, completed)
    changed = set_changed(row, values)
    row.save(update_fields=[*changed, "updated_at"])
    return f"slice {row.tf_filename} {status}"


def _apply_worker(message: WorkerMessage) -> str:
    run, _ = Run.objects.select_for_update().get_or_create(run_number=message.run_id)
    targets = fast_processing_parameters(message.content.model_dump(exclude_none=True))
    merged = {**run.fast_processing, **targets}
    if set_changed(run, {"fast_processing": merged}):
        run.save(update_fields=["fast_processing", "updated_at"])
    return f"run {run.run_number} worker targets {targets}"


def _seconds(row: Slice, completed: datetime | None) -> float | None:
    """Queued to answered, when both are known."""
    if row.queued_at is None or completed is None:
        return None
    return max((completed - row.queued_at).total_seconds(), 0.0)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
