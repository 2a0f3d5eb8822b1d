"""Watch mode: STF files written into a DAQ exit buffer are ingested once each, restarts too."""

from __future__ import annotations

import os
import signal
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fastmon.inbound.messages import Outcome
from fastmon.ingest.pipeline import ingest_message
from fastmon.models import DeadLetter, StfFile
from fastmon.runtime.startup import ExitCode
from fastmon.runtime.watch import Settling, ingest_files, stf_ready_body
from fastmon.testing.messages import example_body, stf_name
from fastmon.testing.network import TcpProxy
from fastmon.testing.processes import ServiceProcess
from fastmon.testing.waiting import holds_for, wait_until

StartProcess = Callable[..., ServiceProcess]
SETTLE_S = 1.0
RUN = 100200


def content(number: int, size: int = 300_000) -> bytes:
    return (f"STF {number} ".encode() * size)[:size]


def write_slowly(path: Path, data: bytes, chunks: int, pause_s: float) -> None:
    """As a DAQ does: pieces with pauses shorter than the quiet period, flushed each time."""
    step = -(-len(data) // chunks)
    with path.open("wb") as stream:
        for start in range(0, len(data), step):
            stream.write(data[start : start + step])
            stream.flush()
            time.sleep(pause_s)  # the writer's pace: part of what is tested, not a wait


# -- the settling rule, with fakes --------------------------------------------------------------


def test_a_file_settles_once_its_size_and_mtime_stay_unchanged_for_the_quiet_period() -> None:
    files = {"a.stf": (10, 1)}
    settling = Settling(quiet_s=2.0)
    settling.add("a.stf", now=0.0)
    assert settling.settled(files.get, now=0.0) == []  # first look: the quiet period starts
    files["a.stf"] = (20, 2)  # the writer goes on
    assert settling.settled(files.get, now=1.5) == []
    assert settling.settled(files.get, now=3.0) == []  # 1.5 s quiet is not enough
    assert settling.settled(files.get, now=3.5) == ["a.stf"]
    assert len(settling) == 0 and settling.settled(files.get, now=9.0) == []


def test_a_change_seen_restarts_the_quiet_period_and_a_vanished_file_is_dropped() -> None:
    files = {"a.stf": (10, 1), "b.stf.part": (5, 1)}
    settling = Settling(quiet_s=1.0)
    settling.add("a.stf", now=0.0)
    settling.add("b.stf.part", now=0.0)
    settling.settled(files.get, now=0.0)
    settling.add("a.stf", now=0.9)  # an event: same size and mtime, but it was touched
    del files["b.stf.part"]  # renamed away: its new name is a candidate of its own
    assert settling.settled(files.get, now=1.0) == []
    assert len(settling) == 1
    assert settling.settled(files.get, now=2.0) == ["a.stf"]


# -- the notice and its ingest ------------------------------------------------------------------


def test_the_notice_is_the_specs_stf_ready_for_the_file(tmp_path: Path, settings: Any) -> None:
    settings.FASTMON = {**settings.FASTMON, "NAMESPACE": "epic-fastmon", "AGENT_NAME": "fm-1"}
    path = tmp_path / stf_name(RUN, 7)
    path.write_bytes(content(7))
    body = stf_ready_body(path)
    assert body.pop("timestamp")
    assert body == {
        "msg_type": "stf_ready",
        "namespace": "epic-fastmon",
        "sender": "fm-1",
        "filename": "swf.100200.000007.stf",
        "run_id": 100200,
        "sequence": 7,
        "file_url": path.as_uri(),
        "checksum": f"ad:{zlib.adler32(content(7))}",
        "size_bytes": 300_000,
    }


@pytest.mark.django_db(transaction=True)
def test_a_file_already_stored_as_ready_is_not_ingested_again(tmp_path: Path) -> None:
    announced = tmp_path / "swf.101993.000001.stf"  # the spec example's stf_ready announced it
    announced.write_bytes(content(1))
    fresh = tmp_path / stf_name(RUN, 2)
    fresh.write_bytes(content(2))
    assert ingest_message(example_body("stf_ready")).outcome is Outcome.STORED
    before = StfFile.objects.get(stf_filename=announced.name)

    results = ingest_files([str(announced), str(fresh)])
    assert list(results) == [str(fresh)]
    assert results[str(fresh)].outcome is Outcome.STORED
    assert ingest_files([str(announced), str(fresh)]) == {}  # and never again
    after = StfFile.objects.get(stf_filename=announced.name)
    assert (after.updated_at, after.checksum) == (before.updated_at, "ad:1587633204")
    stored = StfFile.objects.get(stf_filename=fresh.name)
    assert stored.status == StfFile.Status.READY
    assert (stored.run.run_number, stored.sequence) == (100200, 2)


@pytest.mark.django_db(transaction=True)
def test_an_announced_stf_is_made_ready_by_its_file(tmp_path: Path) -> None:
    path = tmp_path / "swf.101993.000002.stf"  # the DAQ simulator's stf_gen example
    path.write_bytes(content(2))
    ingest_message(example_body("stf_gen_daqsim"))
    assert ingest_files([str(path)])[str(path)].outcome is Outcome.STORED
    stf = StfFile.objects.get()
    assert stf.status == StfFile.Status.READY
    assert (stf.size_bytes, stf.file_url) == (300_000, path.as_uri())


# -- run_fastmon --watch, against the real broker and database ----------------------------------


def watch_settings(**changes: Any) -> dict[str, Any]:
    return {
        "SUBSCRIBE_DESTINATIONS": [f"/topic/fastmon.test.{uuid.uuid4().hex}"],
        "AGENT_NAME": f"fastmon-agent-test-{uuid.uuid4().hex[:8]}",
        "SAMPLING_ENABLED": False,  # no Celery worker here
        "WATCH_SETTLE_S": SETTLE_S,
        **changes,
    }


def ingested_lines(processes: list[ServiceProcess], path: Path) -> int:
    return sum(process.output().count(f"watch: {path}: stored") for process in processes)


def ready(name: str) -> bool:
    return StfFile.objects.filter(stf_filename=name, status=StfFile.Status.READY).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("observer", ["inotify", "polling"])
def test_watch_ingests_each_file_once_as_it_is_written_and_across_a_restart(
    start_process: StartProcess, tmp_path: Path, observer: str
) -> None:
    buffer = tmp_path / "daq-exit-buffer"
    buffer.mkdir()
    (buffer / stf_name(RUN, 1)).write_bytes(content(1))  # there before the watcher starts
    # inotify through --watch; polling through the settings, so both ways of asking are used.
    if observer == "inotify":
        settings = watch_settings()
        argv = ["manage.py", "run_fastmon", "--watch", str(buffer)]
    else:
        settings = watch_settings(WATCH_DIRS=[str(buffer)], WATCH_POLLING=True)
        argv = ["manage.py", "run_fastmon"]
    first = start_process(settings, argv=argv)
    first.wait_for_log(f"({observer}), complete after {SETTLE_S}s quiet")

    # Slowly, in pieces: never ingested half written.
    slow = buffer / stf_name(RUN, 2)
    data = content(2, size=3_000_000)
    write_slowly(slow, data, chunks=6, pause_s=SETTLE_S / 3)
    assert not StfFile.objects.filter(stf_filename=slow.name).exists()
    # Under a temporary name, then renamed; neither it nor other files count as STFs.
    part = buffer / f"{stf_name(RUN, 3)}.part"
    write_slowly(part, content(3), chunks=3, pause_s=0.2)
    part.rename(buffer / stf_name(RUN, 3))
    (buffer / "run.log").write_text("not an STF")
    (buffer / f".{stf_name(RUN, 9)}").write_text("a writer's hidden temporary file")

    for number in (1, 2, 3):
        wait_until(lambda n=number: ready(stf_name(RUN, n)), 20, f"{stf_name(RUN, number)} ready",
                   context=first.output)  # fmt: skip
    stf = StfFile.objects.get(stf_filename=slow.name)
    assert (stf.size_bytes, stf.checksum) == (len(data), f"ad:{zlib.adler32(data)}")
    assert stf.received_at <= stf.committed_at
    assert stf.metadata["stf_ready"]["sender"] == settings["AGENT_NAME"]
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0
    assert "watch: stopped" in first.output()
    stamps = dict(StfFile.objects.values_list("stf_filename", "updated_at"))

    # Written while nobody watched: picked up by the next watcher, and nothing else again.
    (buffer / stf_name(RUN, 4)).write_bytes(content(4))
    second = start_process(settings, argv=argv)
    wait_until(lambda: ready(stf_name(RUN, 4)), 20, "the file written while down",
               context=second.output)  # fmt: skip
    (buffer / stf_name(RUN, 5)).write_bytes(content(5))
    wait_until(lambda: ready(stf_name(RUN, 5)), 20, "a file written after the restart",
               context=second.output)  # fmt: skip
    # A mistaken second ingest of any file would change its row while this holds.
    holds_for(
        lambda: all(
            StfFile.objects.get(stf_filename=name).updated_at == updated_at
            for name, updated_at in stamps.items()
        ),
        2 * SETTLE_S,
        "the files ingested before the restart left alone",
    )

    names = {stf_name(RUN, n) for n in range(1, 6)}
    assert set(StfFile.objects.values_list("stf_filename", flat=True)) == names
    assert set(StfFile.objects.values_list("status", flat=True)) == {StfFile.Status.READY}
    for name, updated_at in stamps.items():
        assert StfFile.objects.get(stf_filename=name).updated_at == updated_at, name
    for name in sorted(names):
        assert ingested_lines([first, second], buffer / name) == 1, name
    assert not DeadLetter.objects.exists()
    second.signal(signal.SIGINT)
    assert second.wait(timeout=20) == 0


@pytest.mark.django_db(transaction=True)
def test_files_wait_while_the_database_is_away_and_are_ingested_when_it_returns(
    start_process: StartProcess, tmp_path: Path, db_proxy: TcpProxy
) -> None:
    settings = watch_settings(RETRY_MIN_S=0.1, RETRY_MAX_S=1.0)
    argv = ["manage.py", "run_fastmon", "--watch", str(tmp_path)]
    watcher = start_process(settings, db_port=db_proxy.port, argv=argv)
    watcher.wait_for_log("subscribed to")

    db_proxy.cut()
    for number in (1, 2):
        (tmp_path / stf_name(RUN, number)).write_bytes(content(number))
    watcher.wait_for_log("watch: database unavailable", count=2)
    assert not StfFile.objects.exists()
    assert watcher.process.poll() is None

    db_proxy.restore()
    wait_until(lambda: StfFile.objects.filter(status=StfFile.Status.READY).count() == 2, 30,
               "both files ingested", context=watcher.output)  # fmt: skip
    watcher.signal(signal.SIGTERM)
    assert watcher.wait(timeout=20) == 0


def test_a_watch_directory_that_is_not_there_is_a_configuration_error(
    start_process: StartProcess, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    process = start_process(watch_settings(),
                            argv=["manage.py", "run_fastmon", "--watch", str(missing)])  # fmt: skip
    assert process.wait(timeout=30) == ExitCode.CONFIG
    assert f"watch: not a directory: {missing}" in process.output()
    assert not os.path.exists(missing)
