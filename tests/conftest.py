"""Shared fixtures. Tests use real services; one that is down fails the test, naming it.

Every test is marked by what it needs (``pytest_collection_modifyitems``): ``browser`` (headless
Chromium), ``integration`` (PostgreSQL, Redis or ActiveMQ), or else ``unit`` (nothing):
``scripts/test.sh -m unit`` runs without any service.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import stomp
from django.conf import settings
from django.db import connection

from fastmon.conf import fastmon_settings
from fastmon.testing import broker
from fastmon.testing.broker import broker_login
from fastmon.testing.browser import chromium
from fastmon.testing.network import TcpProxy
from fastmon.testing.processes import ServiceProcess
from fastmon.testing.swf_monitor import SwfMonitorStandIn

ROOT = Path(__file__).resolve().parent.parent  # the checkout: manage.py, scripts/
START_HINT = "start it with `scripts/services.sh up`"

# Fixtures that reach a real service; a test using any of them (directly or through another
# fixture) is an integration test.
SERVICE_FIXTURES = {
    "db", "transactional_db", "django_db_setup", "live_server", "redis_url", "stomp_address",
    "stomp_connection", "start_process", "db_proxy", "remote_data_dir",
}  # fmt: skip
# Test modules that reach a service through the site's settings rather than a fixture.
SERVICE_MODULES = {"tests.test_site", "tests.live.test_socket", "tests.live.test_events"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(kind) for kind in ("unit", "integration", "browser")):
            continue  # marked by hand
        needs = set(getattr(item, "fixturenames", ()))
        module = item.module.__name__ if item.module else ""
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


@pytest.fixture
def publish(stomp_address: tuple[str, int]) -> Callable[[str, Iterable[str]], None]:
    """``publish(destination, bodies)``: persistent sends to the test broker, logged in as the
    site's fastmon is, returning once the broker has confirmed the last one."""

    def send(destination: str, bodies: Iterable[str]) -> None:
        broker.publish(stomp_address, broker_login(), destination, bodies)

    return send


@pytest.fixture
def remote_data_dir() -> Iterator[Path]:
    """A directory of the test's own inside what XRootD and nginx serve (``REMOTE_DATA_DIR``)."""
    require_service("nginx", "127.0.0.1", 8088)
    base = Path(settings.REMOTE_DATA_DIR)
    if not base.is_dir():
        pytest.fail(f"{base} is missing: {START_HINT}", pytrace=False)
    directory = base / f"test-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    yield directory
    shutil.rmtree(directory)


@pytest.fixture
def unique_topic() -> str:
    """A topic no other test uses, so tests sharing the broker cannot see each other's traffic."""
    return f"/topic/fastmon.test.{uuid.uuid4().hex}"


@pytest.fixture
def assert_counters_agree() -> Callable[[], None]:
    """A check that every run's statistics counters, kept as samples were written, equal a count
    made afresh from the samples themselves."""
    from fastmon.models import RunCounter
    from fastmon.statistics.counters import recount

    def kept() -> dict:
        rows = RunCounter.objects.exclude(value=0).values_list("run_id", "name", "value")
        return {(run, name): value for run, name, value in rows}

    def check() -> None:
        before = kept()
        recount()
        assert before == kept()

    return check


@pytest.fixture
def start_process(
    tmp_path: Path, stomp_address: tuple[str, int]
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``manage.py run_fastmon`` (or another long-running command: ``argv``, run by this
    Python from the checkout) on the test database, with ``settings_changes`` to ``FASTMON``;
    any still running at the end are killed."""
    started: list[ServiceProcess] = []

    def start(
        settings_changes: dict[str, Any],
        db_port: int | None = None,
        command: str = "run_fastmon",
        argv: list[str] | None = None,
        settings_module: str = "tests.settings",
    ) -> ServiceProcess:
        log = tmp_path / f"{command}-{len(started)}.log"
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "FASTMON_DB_NAME": db["NAME"],
            "FASTMON_DB_PORT": str(db_port or db["PORT"]),
            "FASTMON_TEST_SETTINGS": json.dumps(settings_changes),  # read by tests/settings.py
            "PYTHONUNBUFFERED": "1",
        }
        argv = [sys.executable, *(argv or ["manage.py", command])]
        started.append(ServiceProcess(argv, log, env, cwd=ROOT))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.kill_all()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium (``fastmon.testing.browser``). Playwright's sync API keeps an event
    loop in this thread; the test's own ORM calls (waiting for rows) stay synchronous code."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium() as launched:
        yield launched


@pytest.fixture
def monitor() -> Iterator[SwfMonitorStandIn]:
    """A swf-monitor stand-in on loopback (``fastmon.testing.swf_monitor``), stopped after."""
    stand_in = SwfMonitorStandIn()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def db_proxy() -> TcpProxy:
    db = settings.DATABASES["default"]
    return TcpProxy((db["HOST"], int(db["PORT"])))
