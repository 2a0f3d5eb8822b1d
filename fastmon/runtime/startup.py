"""How run_fastmon starts, and what its exit status tells an operator: at start (and only
then) a database or broker that stays away past STARTUP_CONNECT_TIMEOUT_S ends it with a code
of its own; later, both are waited for however long it takes."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from enum import IntEnum

from django.db import DatabaseError

from fastmon.conf import fastmon_settings, namespace_origin
from fastmon.database.outages import TRANSIENT_DB_ERRORS, refresh_db_connections
from fastmon.models import Run
from fastmon.transport.base import BrokerAuthFailed, BrokerRefused, BrokerUnreachable

logger = logging.getLogger("fastmon.consumer")

# What stops run_fastmon cleanly: an operator's SIGTERM or Ctrl-C, and SIGQUIT, the signal the
# testbed's supervisord stops its agents with (stopsignal=QUIT).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class ExitCode(IntEnum):
    """What run_fastmon's exit status tells an operator."""

    OK = 0
    CONFIG = 2  # bad settings (a destination without /topic/ or /queue/, ...) or no tables
    AUTH = 3  # the broker refused the login
    UNREACHABLE = 4  # no broker answered within STARTUP_CONNECT_TIMEOUT_S
    DATABASE = 5  # the database did not answer within STARTUP_CONNECT_TIMEOUT_S
    REFUSED = 6  # the broker refused the connection (AGENT_NAME in use, ...) or a subscription


def wait_for_database(
    deadline: float, stopping: threading.Event, pause: Callable[[int, str], None]
) -> ExitCode | None:
    """Wait until the database answers with fastmon's tables; an exit code if it does not by
    ``deadline`` (or a stop), or has no tables."""
    attempt = 0
    while True:
        try:
            refresh_db_connections()
            Run.objects.exists()
            return None
        except TRANSIENT_DB_ERRORS as exc:
            if time.monotonic() >= deadline or stopping.is_set():
                logger.error("database unreachable: %s", exc)
                return ExitCode.DATABASE
            pause(attempt, f"database unreachable ({exc})")
            attempt += 1
        except DatabaseError as exc:
            logger.error("database not ready (run `manage.py migrate`?): %s", exc)
            return ExitCode.CONFIG


def connect_broker(
    connect: Callable[[], None], deadline: float, stopping: threading.Event,
    pause: Callable[[int, str], None],
) -> ExitCode | None:  # fmt: skip
    """Connect and subscribe (``connect``), retrying an unreachable broker until ``deadline``;
    an exit code if it refuses, or does not answer by then."""
    attempt = 0
    while not stopping.is_set():
        try:
            connect()
            return None
        except BrokerAuthFailed as exc:
            logger.error("%s", exc)
            return ExitCode.AUTH
        except BrokerRefused as exc:
            logger.error("%s", exc)
            return ExitCode.REFUSED
        except BrokerUnreachable as exc:
            if time.monotonic() >= deadline:
                logger.error("%s; giving up after %.0fs", exc,
                             fastmon_settings.STARTUP_CONNECT_TIMEOUT_S)  # fmt: skip
                return ExitCode.UNREACHABLE
            pause(attempt, str(exc))
            attempt += 1
    return None


def namespace_line() -> str:
    """What run_fastmon says at start of the namespace it serves and where it came from; a
    testbed config that must give one and cannot raises TestbedConfigError (a ValueError: bad
    settings)."""
    namespace, origin = namespace_origin()
    if namespace is None:
        return f"namespace: every namespace accepted ({origin})"
    return f"namespace {namespace!r}, from {origin}"
