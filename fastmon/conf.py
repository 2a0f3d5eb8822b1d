"""All of fastmon's settings, in one place.

A site sets ``FASTMON = {...}`` in its Django settings; every key it leaves out takes the default
below. Broker and monitor settings fall back to the environment variables every testbed agent
reads (``ACTIVEMQ_*``, ``SWF_MONITOR_URL``, ``SWF_API_TOKEN``), so fastmon runs in a testbed
shell with no configuration at all. Values are read at each access, so ``override_settings``
and changed environment variables take effect at once in tests.

    from fastmon.conf import fastmon_settings
    fastmon_settings.NAMESPACE
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import Any

from django.conf import settings


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_flag(name: str) -> bool:
    return (_env(name) or "").lower() in {"1", "true", "yes", "on"}


def _broker_hosts() -> list[tuple[str, int]]:
    return [(_env("ACTIVEMQ_HOST", "localhost"), int(_env("ACTIVEMQ_PORT", "61613")))]


def _agent_name() -> str:
    return f"fastmon-agent-{getpass.getuser()}-1"


# A callable default is evaluated at each access (environment fallbacks).
DEFAULTS: dict[str, Any | Callable[[], Any]] = {
    # Testbed namespace fastmon serves. Messages naming another namespace are dropped;
    # messages without a namespace are always processed. None accepts every namespace.
    "NAMESPACE": None,
    # fastmon's agent name: the STOMP client-id, and `sender`/`processed_by` of what it sends.
    "AGENT_NAME": _agent_name,
    # TFs per STF when an announcement gives no tf_count (the testbed's runner sends none).
    "DEFAULT_TF_COUNT": 1000,
    # Bodies larger than this are dead-lettered unparsed.
    "MAX_BODY_BYTES": 1024 * 1024,
    # Broker: a list of (host, port) pairs, tried in order.
    "BROKER_HOSTS": _broker_hosts,
    "BROKER_USER": lambda: _env("ACTIVEMQ_USER"),
    "BROKER_PASSWORD": lambda: _env("ACTIVEMQ_PASSWORD"),
    "BROKER_USE_SSL": lambda: _env_flag("ACTIVEMQ_USE_SSL"),
    "BROKER_SSL_CA_CERTS": lambda: _env("ACTIVEMQ_SSL_CA_CERTS"),
    "BROKER_SSL_CERT_FILE": lambda: _env("ACTIVEMQ_SSL_CERT_FILE"),
    "BROKER_SSL_KEY_FILE": lambda: _env("ACTIVEMQ_SSL_KEY_FILE"),
    # STOMP heart-beats (send, receive) in ms, as the testbed agents use.
    "BROKER_HEARTBEATS": (30000, 30000),
    # Where announcements come from, and where tf_file_registered goes.
    "SUBSCRIBE_DESTINATIONS": ["/topic/epictopic"],
    "PUBLISH_DESTINATION": "/topic/epictopic",
    # swf-monitor, for heartbeats and registering samples there (None: off).
    "SWF_MONITOR_URL": lambda: _env("SWF_MONITOR_URL"),
    "SWF_API_TOKEN": lambda: _env("SWF_API_TOKEN"),
}


class FastmonSettings:
    """Attribute access to the ``FASTMON`` dict, with defaults and environment fallbacks."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown fastmon setting {name!r}")
        user_settings = getattr(settings, "FASTMON", {}) or {}
        if name in user_settings:
            return user_settings[name]
        default = DEFAULTS[name]
        return default() if callable(default) else default


fastmon_settings = FastmonSettings()
