"""fastmon_tail against live events in PostgreSQL (the management command), and the
``fastmon-tail`` console script following a served site across a restart."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from fastmon.live.frames import event_frame
from fastmon.models import LiveEvent
from fastmon.testing.announcing import sampled_run
from fastmon.testing.network import TcpProxy, free_port
from fastmon.testing.processes import ServiceProcess
from fastmon.testing.waiting import wait_until


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
    "args",
    [
        ["--since", "-1"], ["--interval", "0"], ["--kinds", ","], ["--run", "x"],
        ["--url", "ftp://host/fastmon/"], ["--url", "http://host:port/"], ["--url", "host/"],
    ],
)  # fmt: skip
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
