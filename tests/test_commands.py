"""Management commands and the README's demo command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from fastmon.models import DeadLetter, StfFile
from fastmon.testing.messages import EXAMPLES_DIR, example_body, example_names

ROOT = Path(__file__).resolve().parent.parent
SHARED_EXAMPLES = ROOT.parent / "shared" / "spec" / "examples"


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


def test_the_demo_runs_on_sqlite_with_nothing_else(tmp_path: Path) -> None:
    env = {**os.environ, "FASTMON_DEMO_DIR": str(tmp_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "-m", "demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fastmon.sqlite3").exists()
    assert "run 101993: run/standby, 2 STFs (1 sampled), end_run total 42" in done.stdout
    # stf_ready makes an STF samplable: sampled in-process (Celery eager), 7 testbed blocks.
    assert (
        "swf.101993.000001.stf  seq 1  sampled  size 2147483648  checksum ad:1587633204  "
        "TF samples 7" in done.stdout
    )
    assert (
        "swf.101993.000002.stf  seq 2  announced  size 2147483648  checksum ad:3735928559  "
        "TF samples 0" in done.stdout
    )
    assert "dead letters pending: 1" in done.stdout


@pytest.mark.skipif(not SHARED_EXAMPLES.is_dir(), reason="../shared/spec is not beside the repo")
def test_the_packaged_examples_are_the_specs() -> None:
    spec = sorted(p.stem for p in SHARED_EXAMPLES.glob("*.json"))
    assert example_names() == spec
    for name in spec:
        assert example_body(name) == (SHARED_EXAMPLES / f"{name}.json").read_text(), name
