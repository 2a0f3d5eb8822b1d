"""TF samples in PostgreSQL: the spec's range rules as constraints."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from fastmon.models import Run, StfFile, TfSample

pytestmark = pytest.mark.django_db


@pytest.fixture
def stf() -> StfFile:
    run = Run.objects.create(run_number=100010)
    return StfFile.objects.create(stf_filename="swf.100010.000001.stf", run=run, tf_count=1000)


def sample(stf: StfFile, **fields) -> TfSample:
    values = {"tf_filename": "swf.100010.000001_tf_001.tf", "tf_first": 37, "tf_last": 58,
              "tf_count": 22, "file_size_bytes": 46137344, **fields}  # fmt: skip
    return TfSample.objects.create(stf=stf, **values)


def test_a_sample_that_follows_the_spec_is_stored(stf: StfFile) -> None:
    stored = sample(stf)
    assert stored.status == TfSample.Status.REGISTERED
    assert stored.tf_file_id is not None


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"tf_first": 59, "tf_last": 58, "tf_count": 0}, "fastmon_tf_first_le_last"),
        ({"tf_count": 21}, "fastmon_tf_count_matches_range"),
        ({"file_size_bytes": -1}, "fastmon_tf_size_nonnegative"),
        ({"tf_first": -1, "tf_count": 60}, "tf_first"),
    ],
)
def test_the_database_refuses_a_sample_that_breaks_the_range_rules(
    stf: StfFile, fields: dict, constraint: str
) -> None:
    with pytest.raises(IntegrityError, match=constraint):
        sample(stf, **fields)


def test_tf_filename_and_stf_filename_are_unique(stf: StfFile) -> None:
    sample(stf)
    with pytest.raises(IntegrityError):
        sample(stf)
