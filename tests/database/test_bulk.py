"""The ingest hot path's COPY (``fastmon.database.bulk``): every value comes back as the ORM
stores it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import DataError, transaction

from fastmon.database.bulk import bulk_insert, insert_rows
from fastmon.models import OutboxMessage, Run, StfFile, TfSample
from fastmon.testing.messages import tf_sample_name

pytestmark = pytest.mark.django_db

# What COPY's text format gives a meaning to, and text beyond ASCII.
AWKWARD = "tab\there, line\nbreak, cr\rreturn, back\\slash, \\N, \\t, quote \" ' ß → 📦"


def test_insert_rows_stores_awkward_text_json_nulls_and_datetimes_as_given() -> None:
    run = Run.objects.create(run_number=100010)
    at = datetime(2026, 11, 20, 14, 3, 21, 630555, tzinfo=UTC)
    metadata = {"stf_gen": {"note": AWKWARD, "nested": [1, 2.5, None, True, {"k": "\\"}]}}
    insert_rows(StfFile, [
        {"stf_filename": "swf.100010.000001.stf", "run_id": run.pk, "sequence": 1,
         "state": AWKWARD, "checksum": "", "started_at": at, "metadata": metadata},
        {"stf_filename": "swf.100010.000002.stf", "run_id": None, "size_bytes": 2**62},
    ])  # fmt: skip

    first, second = StfFile.objects.order_by("stf_filename")
    assert (first.run, first.sequence, first.state, first.checksum) == (run, 1, AWKWARD, "")
    assert first.started_at == at and first.ended_at is None
    assert first.metadata == metadata
    assert first.updated_at == second.updated_at  # auto_now: one now for the batch
    # Left out: the field's default.
    assert (second.run, second.state, second.metadata) == (None, "", {})
    assert second.size_bytes == 2**62 and second.status == StfFile.Status.ANNOUNCED


def test_bulk_insert_stores_model_instances_with_booleans_uuids_and_auto_now_add() -> None:
    stf = StfFile.objects.create(stf_filename="swf.100010.000001.stf")
    samples = [
        TfSample(
            stf=stf,
            tf_filename=tf_sample_name(100010, 1, n),
            tf_first=n,
            tf_last=n,
            tf_count=1,
            file_size_bytes=n,
            metadata={"note": AWKWARD},
        )
        for n in (1, 2)
    ]
    bulk_insert(TfSample, samples)

    stored = list(TfSample.objects.order_by("tf_first"))
    assert [s.tf_file_id for s in stored] == [s.tf_file_id for s in samples]  # UUIDs
    assert all(s.metadata == {"note": AWKWARD} and s.created_at for s in stored)
    bulk_insert(OutboxMessage, [OutboxMessage(destination="/topic/t", body=AWKWARD)])
    assert OutboxMessage.objects.get().body == AWKWARD


def test_a_value_the_database_cannot_hold_raises_a_database_error() -> None:
    with pytest.raises(DataError), transaction.atomic():
        insert_rows(StfFile, [{"stf_filename": "swf.100010.000001.stf", "state": "nul\x00"}])
    assert not StfFile.objects.exists()


def test_insert_rows_gives_each_row_its_own_callable_default() -> None:
    stf = StfFile.objects.create(stf_filename="swf.100010.000001.stf")
    insert_rows(TfSample, [
        {"stf_id": stf.pk, "tf_filename": tf_sample_name(100010, 1, n), "tf_first": n,
         "tf_last": n, "tf_count": 1}
        for n in (1, 2)
    ])  # fmt: skip
    assert len({sample.tf_file_id for sample in TfSample.objects.all()}) == 2  # uuid4 each
