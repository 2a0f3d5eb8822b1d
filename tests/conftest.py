"""Shared fixtures. Tests use real services; one that is down fails the test, naming it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import stomp
from django.conf import settings

from fastmon.conf import fastmon_settings

START_HINT = "start it with `scripts/services.sh up`"


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
