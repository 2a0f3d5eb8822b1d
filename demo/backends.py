"""The demo's backends from URLs: the embedded defaults, or real services given by one flag each.

``python -m demo --broker-url ... --database-url ... --redis-url ...`` passes them to the
settings through the environment (``FASTMON_DEMO_*``), so a ``celery -A demo`` or
``manage.py``-style process started with the same environment sees the same site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

BROKER_ENV = "FASTMON_DEMO_BROKER_URL"
DATABASE_ENV = "FASTMON_DEMO_DATABASE_URL"
REDIS_ENV = "FASTMON_DEMO_REDIS_URL"
DESTINATION_ENV = "FASTMON_DEMO_DESTINATION"
STF_URL_PREFIX_ENV = "FASTMON_DEMO_STF_URL_PREFIX"

IN_PROCESS_TRANSPORT = "fastmon.transport.inprocess.InProcessTransport"


def database(url: str | None, sqlite_path: Path) -> dict[str, Any]:
    """``postgresql://user:password@host:port/name``, or SQLite at ``sqlite_path`` when None.

    SQLite in WAL mode: the pages and the websocket read while the consumer writes.
    """
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path,
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres") or not parsed.path.strip("/"):
        raise ValueError(f"database URL {url!r}: expected postgresql://user:password@host/name")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": parsed.hostname or "127.0.0.1",
        "PORT": str(parsed.port or 5432),
        "NAME": unquote(parsed.path.strip("/")),
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
    }


def broker(url: str | None) -> dict[str, Any]:
    """FASTMON settings for ``stomp://user:password@host:port`` (``stomp+ssl://`` for TLS), or
    the in-process transport when None. Without a login in the URL, ``ACTIVEMQ_USER`` and
    ``ACTIVEMQ_PASSWORD`` apply, as for every testbed agent."""
    if not url:
        return {"TRANSPORT": IN_PROCESS_TRANSPORT}
    parsed = urlparse(url)
    if parsed.scheme not in ("stomp", "stomp+ssl") or not parsed.hostname:
        raise ValueError(f"broker URL {url!r}: expected stomp://user:password@host:port")
    settings: dict[str, Any] = {
        "BROKER_HOSTS": [(parsed.hostname, parsed.port or 61613)],
        "BROKER_USE_SSL": parsed.scheme == "stomp+ssl",
    }
    if parsed.username:
        settings["BROKER_USER"] = unquote(parsed.username)
        settings["BROKER_PASSWORD"] = unquote(parsed.password or "")
    return settings


def channel_layer(url: str | None, prefix: str) -> dict[str, Any]:
    """Redis pub/sub at ``redis://host:port/db``, or the in-memory layer when None. ``prefix``
    keeps demos on other databases off these pages (pub/sub ignores database numbers)."""
    if not url:
        return {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    if urlparse(url).scheme not in ("redis", "rediss"):
        raise ValueError(f"Redis URL {url!r}: expected redis://host:port/db")
    return {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [url], "prefix": prefix},
    }


def describe(database_url: str | None, broker_url: str | None, redis_url: str | None) -> str:
    """What the demo runs on, passwords left out."""

    def bare(url: str) -> str:
        parsed = urlparse(url)
        return parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()

    return ", ".join([
        f"database {bare(database_url)}" if database_url else "SQLite",
        f"broker {bare(broker_url)}" if broker_url else "in-process broker",
        f"channel layer {bare(redis_url)}" if redis_url else "in-memory channel layer",
        "Celery in-process",
    ])  # fmt: skip
