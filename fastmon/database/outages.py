"""Database outages: telling one from a refused row, which failures pass (an outage waited out),
and connections dropped when they broke or grew old."""

from __future__ import annotations

import time
from typing import Any
from weakref import WeakKeyDictionary

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
)

from fastmon.conf import fastmon_settings

# Failures that pass: the database or its connection is away for a while.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def is_outage(exc: BaseException) -> bool:
    """Database errors other than a refused row are not the message's fault: they must reach
    the caller (the consumer retries; nothing is acked)."""
    return isinstance(exc, DatabaseError) and not isinstance(exc, IntegrityError | DataError)


def refresh_db_connections() -> None:
    """Drop database connections that broke or grew old, before each batch.

    Django's ``close_old_connections`` would also close a healthy connection whenever the
    site's CONN_MAX_AGE is 0 (the default), and reconnecting for every batch cost run_fastmon
    about a tenth of its time; a consumer keeps its connection for DB_CONNECTION_MAX_AGE_S.
    """
    max_age = fastmon_settings.DB_CONNECTION_MAX_AGE_S
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        seen = _first_seen.get(connection)
        if seen is None or seen[0] is not connection.connection:
            seen = _first_seen[connection] = (connection.connection, time.monotonic())
        too_old = time.monotonic() - seen[1] > max_age
        if too_old or (connection.errors_occurred and not connection.is_usable()):
            connection.close()


# Per Django connection, its driver connection and when that was first seen (a reconnect brings
# a new one). Keyed by Django's wrapper: sqlite3's connections take no weak references.
_first_seen: WeakKeyDictionary[Any, tuple[Any, float]] = WeakKeyDictionary()
