"""Shared fixtures. Tests use real services; one that is down fails the test, naming it.

Every test is marked by what it needs (``pytest_collection_modifyitems``): ``browser`` (headless
Chromium), ``integration`` (PostgreSQL, Redis or ActiveMQ), or else ``unit`` (nothing):
``scripts/test.sh -m unit`` runs without any service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import stomp
from django.conf import settings
from django.db import connection

from fastmon.conf import fastmon_settings

START_HINT = "start it with `scripts/services.sh up`"

# Fixtures that reach a real service; a test using any of them (directly or through another
# fixture) is an integration test.
SERVICE_FIXTURES = {
    "db", "transactional_db", "django_db_setup", "live_server", "redis_url", "stomp_address",
    "stomp_connection", "start_process", "db_proxy",
}  # fmt: skip
# Tests that reach a service through the site's settings rather than a fixture.
SERVICE_MODULES = {"test_site", "test_live"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(kind) for kind in ("unit", "integration", "browser")):
            continue  # marked by hand
        needs = set(getattr(item, "fixturenames", ()))
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if "browser" in needs:
            item.add_marker(pytest.mark.browser)
        elif (
            needs & SERVICE_FIXTURES
            or item.get_closest_marker("django_db")
            or module in SERVICE_MODULES
        ):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


def require_service(name: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        pytest.fail(
            f"{name} is not reachable at {host}:{port} ({exc}): {START_HINT}", pytrace=False
        )


@pytest.fixture(scope="session")
def django_db_modify_db_settings() -> None:
    """Runs before pytest-django creates the test database: fail clearly if PostgreSQL is down."""
    db = settings.DATABASES["default"]
    require_service("PostgreSQL", db["HOST"], int(db["PORT"]))


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = urlparse(settings.REDIS_URL)
    require_service("Redis", url.hostname or "127.0.0.1", url.port or 6379)
    return settings.REDIS_URL


@pytest.fixture(scope="session")
def stomp_address() -> tuple[str, int]:
    host, port = fastmon_settings.BROKER_HOSTS[0]
    require_service("ActiveMQ (STOMP)", host, port)
    return host, port


@pytest.fixture
def stomp_connection(stomp_address: tuple[str, int]) -> Iterator[stomp.Connection]:
    """A plain stomp.py connection to the test broker, closed after the test."""
    connection = stomp.Connection([stomp_address], heartbeats=(0, 0))
    connection.connect(*broker_login(), wait=True)
    yield connection
    connection.disconnect()


def broker_login() -> tuple[str, str]:
    return fastmon_settings.BROKER_USER, fastmon_settings.BROKER_PASSWORD


@pytest.fixture
def unique_topic() -> str:
    """A topic no other test uses, so tests sharing the broker cannot see each other's traffic."""
    return f"/topic/fastmon.test.{uuid.uuid4().hex}"


ROOT = Path(__file__).resolve().parent.parent


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    context: Callable[[], str] | None = None,
) -> Any:
    """Poll until ``condition()`` is truthy; fail naming ``what`` (and showing ``context()``,
    say a process's log) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            shown = f"\n{context()}" if context else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{shown}", pytrace=False)
        time.sleep(0.1)


def assert_counters_agree() -> None:
    """Every run's statistics counters, kept as samples were written, equal a count made afresh
    from the samples themselves."""
    from fastmon.models import RunCounter
    from fastmon.statistics.counters import recount

    def kept() -> dict:
        rows = RunCounter.objects.exclude(value=0).values_list("run_id", "name", "value")
        return {(run, name): value for run, name, value in rows}

    before = kept()
    recount()
    assert before == kept()


def holds_for(condition: Callable[[], Any], seconds: float, what: str) -> None:
    """Check ``condition()`` again and again for ``seconds``; fail as soon as it is false. For
    "nothing more happens": a violation shows the moment it happens, not after a fixed sleep."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            pytest.fail(f"{what} stopped holding", pytrace=False)
        time.sleep(0.02)
    assert condition(), f"{what} stopped holding"


class ServiceProcess:
    """``manage.py run_fastmon`` (or another long-running command: ``argv``) in a subprocess of
    its own session, on the test database, its log in a file."""

    def __init__(
        self,
        log_path: Path,
        settings_changes: dict[str, Any],
        db_port: int | None,
        argv: list[str],
        settings_module: str = "tests.settings",
    ) -> None:
        self.log_path = log_path
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "FASTMON_DB_NAME": db["NAME"],
            "FASTMON_DB_PORT": str(db_port or db["PORT"]),
            "FASTMON_TEST_SETTINGS": json.dumps(settings_changes),
            "PYTHONUNBUFFERED": "1",
        }
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=env, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20, count: int = 1) -> None:
        wait_until(
            lambda: self.output().count(text) >= count or self.process.poll() is not None,
            timeout, f"{text!r} in the run_fastmon log",
        )  # fmt: skip
        assert self.output().count(text) >= count, f"run_fastmon exited:\n{self.output()}"

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill_all(self) -> None:
        """SIGKILL the process and every child it started (a Celery worker's pool)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.wait()

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self.log.close()


@pytest.fixture
def start_process(
    tmp_path: Path, stomp_address: tuple[str, int]
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start run_fastmon processes; any still running at the end are killed."""
    started: list[ServiceProcess] = []

    def start(
        settings_changes: dict[str, Any],
        db_port: int | None = None,
        command: str = "run_fastmon",
        argv: list[str] | None = None,
        settings_module: str = "tests.settings",
    ) -> ServiceProcess:
        log = tmp_path / f"{command}-{len(started)}.log"
        argv = argv or ["manage.py", command]
        consumer = ServiceProcess(log, settings_changes, db_port, argv, settings_module)
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        if consumer.process.poll() is None:
            consumer.kill_all()


class TcpProxy:
    """A loopback TCP relay to a real server that a test can cut and restore, to make the
    server unreachable for one client without stopping it for everyone."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and break the ones that are open."""
        self.open.clear()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.open.set()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            if not self.open.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def db_proxy() -> TcpProxy:
    db = settings.DATABASES["default"]
    return TcpProxy((db["HOST"], int(db["PORT"])))
