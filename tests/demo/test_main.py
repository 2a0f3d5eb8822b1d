"""The one-command demo: ``python -m demo`` as a user runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from fastmon.testing.broker import broker_login
from fastmon.testing.waiting import fail, wait_until

ROOT = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"^fastmon demo: (http://127\.0\.0\.1:\d+/fastmon/)$", re.MULTILINE)


class Demo:
    """``python -m demo`` in a session of its own, its output in a file."""

    def __init__(self, tmp_path: Path, args: list[str], stdout: int | None = None) -> None:
        """``stdout``: subprocess.PIPE to read the standard output from a pipe, not the log."""
        self.log_path = tmp_path / "demo.log"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("FASTMON_DEMO_") and key != "DJANGO_SETTINGS_MODULE"
        }
        # asyncio's debug mode refuses a loop's callbacks scheduled from another thread: a
        # push to the in-memory channel layer off uvicorn's loop fails instead of racing.
        env.update(FASTMON_DEMO_DIR=str(tmp_path / "demo"), PYTHONUNBUFFERED="1",
                   PYTHONASYNCIODEBUG="1")  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "demo", "--port", "0", *args], cwd=ROOT, env=env,
                stdout=stdout or log, stderr=log if stdout else subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self) -> str:
        wait_until(
            lambda: URL_LINE.search(self.output()) or self.process.poll() is not None,
            60, "the demo's URL line", self.output,
        )  # fmt: skip
        match = URL_LINE.search(self.output())
        assert match, f"the demo exited:\n{self.output()}"
        return match[1]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            fail(f"the demo did not stop within 30 s:\n{self.output()}")


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Any]:
    started: list[Demo] = []

    def start(*args: str, stdout: int | None = None) -> Demo:
        started.append(Demo(tmp_path, list(args), stdout))
        return started[-1]

    yield start
    for demo in started:
        if demo.process.poll() is None:
            os.killpg(demo.process.pid, signal.SIGKILL)
            demo.process.wait()


def frames_of(websocket: ClientConnection, seconds: float) -> Iterator[dict[str, Any]]:
    """The websocket's frames for ``seconds``, or until it closes."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            yield json.loads(websocket.recv(timeout=left))
        except (TimeoutError, ConnectionClosed):
            return


def sample_frames(frames: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for frame in frames:
        if frame["type"] == "events" and any(e["kind"] == "tf_samples" for e in frame["events"]):
            yield frame


def watch_the_pipeline(demo: Demo) -> None:
    """The dashboard answers; its websocket brings TF samples within seconds, pushed one
    batch at a time (the pages' database poll, every LIVE_POLL_S = 5 s, would bring them in
    one frame per poll); the fast path downstream is played too: slices are answered."""
    url = demo.url()
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert 'data-websocket-path="/fastmon/ws/live/"' in response.read().decode()
    ws_url = url.replace("http://", "ws://") + "ws/live/?since=0"
    with ws_connect(ws_url, open_timeout=10) as websocket:
        first = next(sample_frames(frames_of(websocket, 30)), None)
        assert first, f"no TF samples on the websocket within 30 s:\n{demo.output()}"
        pushed = list(sample_frames(frames_of(websocket, 4)))
    assert len(pushed) >= 3, f"{len(pushed)} frames of TF samples in 4 s:\n{demo.output()}"
    sample = next(e for e in first["events"] if e["kind"] == "tf_samples")
    assert sample["run_number"] and sample["payload"]
    processing = f"{url}api/runs/{sample['run_number']}/processing/"

    def answered() -> bool:
        with urllib.request.urlopen(processing, timeout=10) as response:
            slices = json.loads(response.read())["slices"]
        return slices["done"] > 0

    wait_until(answered, 30, "slices answered by the played workers", context=demo.output)
    content = f"{url}api/runs/{sample['run_number']}/content/"

    def decoded() -> bool:  # the merger's cycle is 5 s: content within the first minute
        with urllib.request.urlopen(content, timeout=10) as response:
            found = json.loads(response.read())
        return found["tfs_decoded"] > 0 and found["corrupt_tfs"] == 0

    wait_until(decoded, 30, "the run's content merged", context=demo.output)


def assert_stopped_cleanly(demo: Demo) -> None:
    assert demo.stop() == 0, demo.output()
    output = demo.output()
    assert output.rstrip().endswith("fastmon demo: stopped cleanly"), output
    assert "Traceback" not in output, output
    assert "could not push" not in output, output
    assert re.search(r"\d+ STFs ingested, [1-9]\d* TF samples, [1-9]\d* TFs decoded", output), (
        output
    )


def test_the_demo_runs_the_pipeline_on_its_embedded_default_and_stops_on_sigint(
    start_demo: Any, tmp_path: Path
) -> None:
    demo = start_demo("--rate", "4")
    watch_the_pipeline(demo)
    assert_stopped_cleanly(demo)
    assert "SQLite, in-process broker, in-memory channel layer" in demo.output()
    assert list((tmp_path / "demo" / "stf").glob("swf.*.run/swf.*.stf")), "no STF files written"


def test_the_demo_still_stops_when_its_output_pipe_has_closed(start_demo: Any) -> None:
    """``python -m demo | tee log``, and tee killed: Ctrl-C must still stop the demo."""
    demo = start_demo("--runs", "0", stdout=subprocess.PIPE)
    lines = iter(demo.process.stdout.readline, b"")
    assert any(URL_LINE.search(line.decode()) for line in lines), demo.output()
    demo.process.stdout.close()
    # A progress line (one each 5 s on a pipe) meets the closed pipe: the demo's standard
    # output is /dev/null from then on (demo.say), and its lines go nowhere.
    wait_until(lambda: os.readlink(f"/proc/{demo.process.pid}/fd/1") == os.devnull, 15,
               "a progress line to meet the closed pipe", demo.output)  # fmt: skip
    assert demo.stop() == 0, demo.output()
    assert "Traceback" not in demo.output(), demo.output()


def test_the_demo_runs_on_real_services_with_one_flag_each(
    start_demo: Any, transactional_db: None, redis_url: str, stomp_address: tuple[str, int]
) -> None:
    db = connection.settings_dict
    user, password = broker_login()
    host, port = stomp_address
    demo = start_demo(
        "--rate", "4",
        "--broker-url", f"stomp://{user}:{password}@{host}:{port}",
        "--database-url",
        f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "--redis-url", redis_url,
        # A queue of the test's own: no durable subscription left behind, no shared traffic.
        "--destination", f"/queue/fastmon.test.demo.{uuid.uuid4().hex}",
    )  # fmt: skip
    watch_the_pipeline(demo)
    assert_stopped_cleanly(demo)
    assert f"broker stomp://{host}:{port}" in demo.output()
    assert f":{password}@" not in demo.output()  # logins are left out


@pytest.mark.parametrize(
    ("flag", "url", "expected"),
    [
        ("--database-url", "mysql://x/y", "postgresql://"),
        ("--broker-url", "http://broker", "stomp://"),
        ("--redis-url", "http://x", "redis://"),
    ],
)
def test_the_demo_refuses_a_bad_service_url(flag: str, url: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo", flag, url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert expected in result.stderr
