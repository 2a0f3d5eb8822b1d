"""The schema in PostgreSQL as the migrations make it: fastmon's own tables, in step with the
models."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from fastmon.models import Run, StfFile, Subscriber, TfSample

pytestmark = pytest.mark.django_db


def test_every_table_is_fastmons_own() -> None:
    tables = {m._meta.db_table for m in (Run, StfFile, TfSample, Subscriber)}
    assert all(t.startswith("fastmon_") for t in tables)
    assert tables <= set(connection.introspection.table_names())


def test_migrations_match_the_models() -> None:
    out = StringIO()
    call_command("makemigrations", "fastmon", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
