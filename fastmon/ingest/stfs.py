"""STF announcements (``stf_gen``, ``stf_ready``) upserted as a set: a handful of queries for a
whole batch. A later announcement enriches a known STF and never erases or downgrades it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.database.bulk import insert_rows
from fastmon.database.rows import aware, set_changed
from fastmon.inbound.bounds import bounded
from fastmon.inbound.messages import InboundMessage
from fastmon.inbound.schema import StfMessage
from fastmon.live.events import record_live_events
from fastmon.live.frames import run_event, stf_events
from fastmon.models import Run, StfFile
from fastmon.quality.framework import StfSeen

# What the quality checks are given of a batch's announcements, by run id.
Seen = dict[int, list[StfSeen]]

# STF columns filled from an announcement; everything else it carries goes to metadata.
_STF_COLUMNS = {
    "msg_type", "filename", "run_id", "sequence", "start", "end", "state", "substate",
    "checksum", "size", "size_bytes", "file_url", "tf_count",
}  # fmt: skip
# An announcement moves an STF forward, never back (a late stf_gen after stf_ready, a
# redelivered stf_ready after sampling).
_STF_STATUS_RANK: dict[str, int] = {
    StfFile.Status.ANNOUNCED: 0,
    StfFile.Status.READY: 1,
    StfFile.Status.SAMPLED: 2,
    StfFile.Status.SKIPPED: 2,
    StfFile.Status.FAILED: 2,
}


def upsert_stf_files(
    announcements: list[tuple[InboundMessage, StfMessage]], seen: Seen
) -> list[str]:
    """Create or enrich the STF files of these announcements, in order, in a few queries; what
    the quality checks are to be given goes into ``seen`` (by run), once it is all stored."""
    messages = [parsed for _, parsed in announcements]
    runs = _run_ids(messages)
    stored = {stf.stf_filename: stf for stf in _locked_stf_files({m.filename for m in messages})}
    new: dict[str, dict[str, Any]] = {}  # rows to insert, by file name
    changed: dict[str, StfFile] = {}
    changed_fields: set[str] = set()
    touched: list[StfMessage] = []  # created or changed: what the live pages hear of
    these: Seen = {}
    details = []
    now = timezone.now()
    limit = fastmon_settings.STORED_JSON_MAX_BYTES
    for inbound, message in announcements:
        values, status, extras = _stf_values(message, runs, limit)
        stf, row = stored.get(message.filename), new.get(message.filename)
        known = stf.metadata if stf is not None else row["metadata"] if row is not None else {}
        size_known = stf.size_bytes if stf is not None else row.get("size_bytes") if row else None
        run_id = stf.run_id if stf is not None and stf.run_id else values.get("run_id")
        if run_id is not None:
            these.setdefault(run_id, []).append(StfSeen(
                message.filename, values.get("sequence"),
                values.get("size_bytes") if size_known is None else None,  # its first size
                inbound.received_at or now, new=stf is None and row is None,
                # The same announcement again, and not the broker redelivering it.
                repeated=message.msg_type in known and inbound.headers.get("redelivered") != "true",
                # The DAQ's time, made aware once (in values) where it is a column.
                daq_at=values.get("ended_at") or values.get("started_at")
                or aware(message.timestamp),
            ))  # fmt: skip
        if stf is None and row is None:
            new[message.filename] = {
                "stf_filename": message.filename,
                "status": status,
                "metadata": {message.msg_type: extras},
                "broker_at": inbound.broker_at,
                "received_at": inbound.received_at or now,
                "committed_at": now,
                **values,
            }
            touched.append(message)
            details.append(f"STF {message.filename} created by {message.msg_type}")
            continue
        if stf is not None:
            fields = set_changed(
                stf, _enrichment(partial(getattr, stf), message, values, status, extras)
            )
            if fields:
                changed[message.filename] = stf
                changed_fields.update(fields)
        else:  # a second announcement of an STF this batch creates
            assert row is not None  # neither stored nor new: created above, and continued
            changes = _enrichment(row.get, message, values, status, extras)
            row.update(changes)
            fields = list(changes)
        if fields:
            touched.append(message)
        details.append(f"STF {message.filename} updated by {message.msg_type}")
    insert_rows(StfFile, list(new.values()))
    if changed:
        for stf in changed.values():  # bulk_update does not apply auto_now
            stf.updated_at = now
        StfFile.objects.bulk_update(changed.values(), [*changed_fields, "updated_at"])
    record_live_events(stf_events(touched))
    for run_id, stfs in these.items():
        seen.setdefault(run_id, []).extend(stfs)
    return details


def _locked_stf_files(names: set[str]) -> Iterable[StfFile]:
    """The STFs of these names, locked for update. On PostgreSQL the names travel as one array
    parameter: Django's IN list, a placeholder per name, cost a batch of 500 new announcements
    about a tenth of its ingest time to build and quote."""
    if transaction.get_connection().vendor != "postgresql":
        return StfFile.objects.select_for_update().filter(stf_filename__in=names)
    table = StfFile._meta.db_table
    return StfFile.objects.raw(
        f'SELECT * FROM "{table}" WHERE stf_filename = ANY(%s) FOR UPDATE', [list(names)]
    )


def _enrichment(
    known: Callable[[str], Any],
    message: StfMessage,
    values: dict[str, Any],
    status: str,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """What a later announcement changes on a known STF (``known`` reads its fields): what it
    leaves out never erases what is known, and its status only moves the STF forward."""
    if _STF_STATUS_RANK[status] > _STF_STATUS_RANK[StfFile.Status(known("status"))]:
        values["status"] = status
    values["metadata"] = {**known("metadata"), message.msg_type: extras}
    return {name: value for name, value in values.items() if known(name) != value}


def _run_ids(messages: list[StfMessage]) -> dict[int, int]:
    """Run number to primary key, creating the runs announcements name before their run_imminent
    (announcements that name no run are left out)."""
    numbered = [(m.run_number, m) for m in messages if m.run_number is not None]
    numbers = {number for number, _ in numbered}
    ids = dict(Run.objects.filter(run_number__in=numbers).values_list("run_number", "pk"))
    missing = {number: m for number, m in numbered if number not in ids}
    if missing:
        Run.objects.bulk_create(
            [
                Run(
                    run_number=number,
                    namespace=m.namespace or "",
                    execution_id=m.execution_id or "",
                )
                for number, m in missing.items()
            ],
            ignore_conflicts=True,
        )
        ids.update(Run.objects.filter(run_number__in=missing).values_list("run_number", "pk"))
        record_live_events(
            [run_event(number, None, None, m.msg_type) for number, m in missing.items()]
        )
    return ids


def _stf_values(
    message: StfMessage, runs: dict[int, int], limit: int
) -> tuple[dict[str, Any], str, dict]:
    """The columns an announcement sets (nulls left out), its status, and its other fields (up
    to ``limit`` bytes of them)."""
    announced = {
        "run_id": runs.get(message.run_number) if message.run_number is not None else None,
        "sequence": message.sequence_number,
        "size_bytes": message.file_size,
        "checksum": message.checksum,
        "file_url": message.file_url,
        "tf_count": message.tf_count,
        "state": message.state,
        "substate": message.substate,
        "started_at": aware(message.start),
        "ended_at": aware(message.end),
    }
    values = {name: value for name, value in announced.items() if value is not None}
    status = StfFile.Status.READY if message.msg_type == "stf_ready" else StfFile.Status.ANNOUNCED
    extras = message.model_dump(mode="json", exclude=_STF_COLUMNS, exclude_none=True)
    return values, status, bounded(extras, limit)
