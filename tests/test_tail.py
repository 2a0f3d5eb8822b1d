"""fastmon_tail: the aggregation on its own, then the command against live events in PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from fastmon.live.frames import event_frame
from fastmon.models import LiveEvent
from fastmon.tail.tally import Tally, describe, human_bytes, table
from tests.conftest import ServiceProcess, TcpProxy, wait_until
from tests.test_api import sampled_run

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def frame(sequence: int, kind: str, run: int | None, payload: Any, at: float = T0) -> dict:
    created = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return {"sequence": sequence, "kind": kind, "run_number": run, "payload": payload,
            "created_at": created}  # fmt: skip


def samples(stf: str, *sizes: int, estimated: bool = False) -> dict:
    return {
        "stf_filename": stf,
        "samples": [
            {"tf_filename": f"{stf}.tf{n}", "tf_first": n, "tf_last": n, "tf_count": 1,
             "file_size_bytes": size, "size_estimated": estimated, "status": "registered"}
            for n, size in enumerate(sizes)
        ],
    }  # fmt: skip


# -- the aggregation ----------------------------------------------------------------------------


def test_tally_sums_a_run_and_its_rates_over_the_window() -> None:
    tally = Tally(window_s=10)
    tally.add(frame(1, "run", 7, {"run_number": 7, "state": "run", "substate": "physics"}))
    stfs = [{"stf_filename": f"swf.7.{n}.stf", "state": "run", "substate": "physics"}
            for n in (1, 2, 3)]  # fmt: skip
    tally.add(frame(2, "stf", 7, {"stfs": stfs}))
    tally.add(frame(3, "tf_samples", 7, samples("swf.7.1.stf", 1_000_000, 2_000_000), T0 - 30))
    tally.add(frame(4, "tf_samples", 7, samples("swf.7.2.stf", 5_000_000, 5_000_000), T0 - 4))
    tally.add(frame(5, "tf_samples", 8, samples("swf.8.1.stf", 10, estimated=True), T0 - 1))

    eight, seven = tally.rows(now=T0)  # highest run first
    assert (seven.stfs, seven.sampled_stfs, seven.tf_samples, seven.bytes) == (3, 2, 4, 13_000_000)
    # Only the samples of the last 10 s count towards the rates: 2 samples, 10 MB.
    assert (seven.tf_samples_per_s, seven.bytes_per_s) == (0.2, 1_000_000)
    assert seven.line() == (
        "run 7: state run/physics, STFs 3, sampled 2, TF samples 4, volume 13.0 MB, "
        "TF/s 0.2, MB/s 1.0"
    )
    # A run seen only through its samples: no run state yet, sizes estimated.
    assert (eight.run_number, eight.state, eight.stfs, eight.estimated) == (8, "", 1, True)
    assert eight.cells()[1] == "-" and eight.cells()[5] == "~10 B"
    assert [row.tf_samples_per_s for row in tally.rows(now=T0 + 60)] == [0, 0]
    assert tally.summary() == "sequence 5, dead letters 0, alarms 0"


def test_tally_takes_the_machine_state_from_stfs_until_a_run_event_says() -> None:
    tally = Tally()
    tally.add(frame(1, "stf", 9, {"stfs": [{"stf_filename": "a", "state": "run",
                                             "substate": "beam"}]}))  # fmt: skip
    assert tally.rows(T0)[0].state == "run/beam"
    tally.add(frame(2, "run", 9, {"state": "paused"}))
    assert tally.rows(T0)[0].state == "paused"


def test_tally_survives_what_it_does_not_know() -> None:
    tally = Tally()
    odd = [
        frame(1, "tf_samples", 1, None),
        frame(2, "tf_samples", 1, {"samples": "nope", "stf_filename": 3}),
        frame(
            3,
            "tf_samples",
            1,
            {"samples": [None, {"file_size_bytes": "12"}, {"file_size_bytes": True}]},
        ),
        frame(4, "stf", "1", {"stfs": [1, {"stf_filename": None}, {}]}),
        frame(5, "run", None, ["state"]),
        {"sequence": "x", "kind": "tf_samples", "created_at": "yesterday"},
        {},
        frame(6, "calibration", 1, {"constants": list(range(200))}),
        frame(7, "dead_letter", None, {"id": 3}),
        frame(8, "alarm", 1, {"severity": "error", "message": "disk full"}),
    ]
    for event in odd:
        tally.add(event)
        describe(event)
    rows = {row.run_number: row for row in tally.rows(T0)}
    assert rows[1].tf_samples == 2 and rows[1].bytes == 0
    assert tally.summary() == "sequence 8, dead letters 1, alarms 1, None 1, calibration 1"
    assert describe(odd[7]).startswith('#6 calibration run 1: {"constants": [0, 1')
    assert describe(odd[7]).endswith("...") and len(describe(odd[7])) < 200


def test_tally_forgets_the_stalest_run_past_its_limit() -> None:
    tally = Tally(max_runs=2)
    for sequence, run in enumerate((1, 2, 1, 3), 1):
        tally.add(frame(sequence, "tf_samples", run, samples("x", 1)))
    assert [row.run_number for row in tally.rows(T0)] == [3, 1]


def test_notable_events_read_as_one_line_and_traffic_as_none() -> None:
    assert describe(frame(4, "run", 5, {"state": "run", "substate": "physics",
                                        "msg_type": "start_run"})) == (
        "#4 run 5: start_run -> run/physics"
    )  # fmt: skip
    assert describe(frame(5, "dead_letter", None, {
        "id": 12, "reason_code": "invalid_json", "reason": "body is not JSON", "msg_type": None,
    })) == "#5 dead letter 12 (-): invalid_json: body is not JSON"  # fmt: skip
    assert describe(frame(6, "alarm", 5, {"severity": "warning", "message": "slow"})) == (
        "#6 ALARM warning: slow"
    )
    assert describe(frame(7, "stf", 5, {"stfs": []})) is None
    assert describe(frame(8, "tf_samples", 5, samples("x", 1))) is None


def test_table_aligns_columns_and_sizes_read_in_decimal_units() -> None:
    tally = Tally()
    tally.add(frame(1, "tf_samples", 101993, samples("a", 2_147_483_648)))
    tally.add(frame(2, "tf_samples", None, samples("b", 999)))
    assert table(tally.rows(T0 + 100)) == [
        "run     state  STFs  sampled  TF samples  volume  TF/s  MB/s",
        "101993  -         1        1           1  2.1 GB   0.0   0.0",
        "-       -         1        1           1   999 B   0.0   0.0",
    ]
    assert [human_bytes(n) for n in (0, 1000, 1_500_000, 3e12, 4e18)] == [
        "0 B", "1.0 kB", "1.5 MB", "3.0 TB", "4000.0 PB",
    ]  # fmt: skip


# -- the command --------------------------------------------------------------------------------


@pytest.fixture
def no_celery() -> Iterator[None]:
    """The tests sample in-process; nothing is enqueued for workers that are not there."""
    with override_settings(FASTMON={**settings.FASTMON, "SAMPLING_ENABLED": False}):
        yield


def events() -> list[dict[str, Any]]:
    return [event_frame(event) for event in LiveEvent.objects.order_by("id")]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def tail(start_process: Callable[..., ServiceProcess]) -> Callable[..., ServiceProcess]:
    """``manage.py fastmon_tail ARGS`` in a subprocess on the test database."""

    def start(*args: str, db_port: int | None = None, **settings_changes: Any) -> ServiceProcess:
        argv = ["manage.py", "fastmon_tail", *args]
        return start_process(settings_changes, db_port, command="fastmon_tail", argv=argv)

    return start


def run_tail(tail: Callable[..., ServiceProcess], *args: str) -> list[dict[str, Any]]:
    """Run ``fastmon_tail --json --once ARGS`` to its end; every line it prints must be JSON."""
    process = tail("--json", "--once", *args)
    assert process.wait() == 0, process.output()
    lines = process.output().splitlines()
    assert all(line.startswith("{") for line in lines), process.output()
    return [json.loads(line) for line in lines]


@pytest.mark.django_db(transaction=True)
def test_json_prints_the_events_in_order_resumes_and_filters(
    no_celery: None, tail: Callable[..., ServiceProcess]
) -> None:
    sampled_run(stfs=2, run=301)
    sampled_run(stfs=3, run=302)
    stored = events()
    assert {event["kind"] for event in stored} >= {"tf_samples"}

    printed = run_tail(tail, "--since", "0")
    assert printed == stored  # the API's /events shape, every field as stored
    sequences = [event["sequence"] for event in printed]
    assert sequences == sorted(set(sequences))

    middle = sequences[len(sequences) // 2]
    assert run_tail(tail, "--since", str(middle)) == [e for e in stored if e["sequence"] > middle]
    assert run_tail(tail, "--since", "0", "--run", "302") == [
        e for e in stored if e["run_number"] == 302
    ]
    only_samples = run_tail(tail, "--since", "0", "--kinds", "tf_samples,alarm")
    assert only_samples == [e for e in stored if e["kind"] in ("tf_samples", "alarm")]
    assert [e["payload"]["stf_filename"] for e in only_samples] == [
        "swf.301.000001.stf", "swf.301.000002.stf",
        "swf.302.000001.stf", "swf.302.000002.stf", "swf.302.000003.stf",
    ]  # fmt: skip
    assert all(len(e["payload"]["samples"]) == 7 for e in only_samples)
    # By default it starts at the newest event: nothing there yet is printed.
    assert run_tail(tail) == []


@pytest.mark.django_db(transaction=True)
def test_json_follows_new_events_and_stops_cleanly_on_sigterm(
    no_celery: None, tail: Callable[..., ServiceProcess]
) -> None:
    sampled_run(stfs=1, run=401)
    newest = events()[-1]["sequence"]
    process = tail("--json", "--since", str(newest), "--interval", "0.1")
    sampled_run(stfs=2, run=402)
    expected = [e for e in events() if e["sequence"] > newest]
    wait_until(lambda: len(json_lines(process.output())) >= len(expected), 20,
               "the new events in fastmon_tail's output", process.output)  # fmt: skip
    process.signal(signal.SIGTERM)
    assert process.wait() == 0, process.output()
    assert json_lines(process.output()) == expected
    assert {e["run_number"] for e in expected} == {402}


@pytest.mark.django_db(transaction=True)
def test_a_lost_database_is_reported_and_waited_for(
    no_celery: None, tail: Callable[..., ServiceProcess], db_proxy: TcpProxy
) -> None:
    process = tail("--json", "--since", "0", "--interval", "0.1", db_port=db_proxy.port,
                   RETRY_MIN_S=0.1, RETRY_MAX_S=0.5)  # fmt: skip
    sampled_run(stfs=1, run=501)
    wait_until(lambda: json_lines(process.output()), 20, "the first events", process.output)
    db_proxy.cut()
    process.wait_for_log("fastmon_tail: database unreachable (")
    sampled_run(stfs=1, run=502)
    db_proxy.restore()
    process.wait_for_log("fastmon_tail: database reachable again")
    wait_until(lambda: len(json_lines(process.output())) == len(events()), 20,
               "the events written while the database was away", process.output)  # fmt: skip
    process.signal(signal.SIGINT)
    assert process.wait() == 0, process.output()
    assert json_lines(process.output()) == events()


@pytest.mark.django_db
def test_the_table_as_plain_lines_when_not_on_a_terminal(no_celery: None) -> None:
    sampled_run(stfs=3, run=601, state="physics")
    out, err = io.StringIO(), io.StringIO()
    call_command("fastmon_tail", "--once", "--since", "0", stdout=out, stderr=err)
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines[-1].startswith(f"sequence {events()[-1]['sequence']}, dead letters 0, alarms 0")
    assert "#" in lines[0] and "run 601: run_imminent -> " in lines[0]
    run_line = next(line for line in lines if line.startswith("run 601: state "))
    assert ", STFs 3, sampled 3, TF samples 21, volume ~" in run_line
    assert err.getvalue() == ""


@pytest.mark.parametrize(
    "args", [["--since", "-1"], ["--interval", "0"], ["--kinds", ","], ["--run", "x"]]
)
def test_bad_arguments_are_refused(args: list[str]) -> None:
    with pytest.raises(CommandError, match="argument"):
        call_command("fastmon_tail", *args)


# -- a served site: fastmon-tail --url ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_console_script_follows_a_served_site_across_a_restart(
    no_celery: None, start_process: Callable[..., ServiceProcess]
) -> None:
    """The host-shaped site (full paths under /swf-monitor, pages behind a login) served by
    uvicorn; fastmon-tail with a token and no database follows it, through a server restart,
    and prints every event once, in order."""
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=User.objects.create_user("shifter")).key
    sampled_run(stfs=1, run=701)
    port = free_port()
    argv = ["-m", "uvicorn", "tests.host.asgi:application", "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip

    def serve() -> ServiceProcess:
        server = start_process({}, command="uvicorn", argv=argv,
                               settings_module="tests.host_settings")  # fmt: skip
        server.wait_for_log("Uvicorn running")
        return server

    server = serve()
    script = str(Path(sys.executable).parent / "fastmon-tail")
    follower = start_process({}, command="fastmon-tail", argv=[  # the console script
        script, "--url", f"http://127.0.0.1:{port}/swf-monitor/fastmon/", "--token", token,
        "--json", "--since", "0", "--interval", "0.2"])  # fmt: skip
    wait_until(lambda: len(json_lines(follower.output())) == len(events()), 20,
               "the stored events, caught up over the API", follower.output)  # fmt: skip

    sampled_run(stfs=1, run=702)  # pushed live over the websocket
    wait_until(lambda: len(json_lines(follower.output())) == len(events()), 20,
               "a new run's events, live", follower.output)  # fmt: skip

    server.kill_all()
    sampled_run(stfs=2, run=703)  # while the site is down
    serve()
    wait_until(lambda: len(json_lines(follower.output())) == len(events()), 30,
               "the events stored while the site was down", follower.output)  # fmt: skip
    sampled_run(stfs=1, run=704)
    wait_until(lambda: len(json_lines(follower.output())) == len(events()), 20,
               "live events after the restart", follower.output)  # fmt: skip

    follower.signal(signal.SIGTERM)
    assert follower.wait() == 0, follower.output()
    assert json_lines(follower.output()) == events()  # none missed, none twice, in order
    assert "reconnected after sequence" in follower.output()


def test_the_console_script_refuses_a_wrong_token(
    start_process: Callable[..., ServiceProcess], db
) -> None:
    port = free_port()
    server = start_process({}, command="uvicorn", settings_module="tests.host_settings", argv=[
        "-m", "uvicorn", "tests.host.asgi:application", "--host", "127.0.0.1",
        "--port", str(port)])  # fmt: skip
    server.wait_for_log("Uvicorn running")
    # No Django settings at all: the console script needs none.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    refused = subprocess.run(
        [str(Path(sys.executable).parent / "fastmon-tail"), "--url",
         f"http://127.0.0.1:{port}/swf-monitor/fastmon/", "--token", "wrong", "--since", "0"],
        capture_output=True, text=True, timeout=60, env=env, cwd="/",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "refused: HTTP 401" in refused.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
