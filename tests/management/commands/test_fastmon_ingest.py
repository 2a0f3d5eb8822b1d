"""fastmon_ingest: example files and stdin lines ingested, each line's outcome printed."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from fastmon.models import DeadLetter, StfFile
from fastmon.testing.messages import EXAMPLES_DIR, example_body


@pytest.mark.django_db
def test_fastmon_ingest_reads_files_and_stdin_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = "\n".join([example_body("stf_ready").strip(), "", "not json"]) + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines.encode())))
    out = io.StringIO()
    call_command("fastmon_ingest", str(EXAMPLES_DIR / "stf_gen.json"), "-", stdout=out)

    assert out.getvalue().splitlines() == [
        "stf_gen.json: stored (STF swf.101993.000001.stf created by stf_gen)",
        "stdin:1: stored (STF swf.101993.000001.stf updated by stf_ready)",
        "stdin:3: dead_lettered (body is not JSON: Expecting value: line 1 column 1 (char 0))",
    ]
    assert StfFile.objects.get().status == StfFile.Status.READY
    assert DeadLetter.objects.get().destination == "file"
