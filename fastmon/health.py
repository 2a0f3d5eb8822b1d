"""Liveness and readiness: each check returns (ok, detail); the views and ``fastmon_health``
report them all as JSON.

Readiness looks at what fastmon needs to do its work: the database, Redis (channel layer and
Celery broker, where configured), a run_fastmon that is alive and connected to the broker (read
from the ConsumerStatus rows it writes, since health checks run in other processes), an outbox
that keeps up, and dead letters that do not pile up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import ConsumerStatus, DeadLetter
from fastmon.outbox.relay import outbox_lag

Check = tuple[bool, Any]


def check_database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True, "ok"


def redis_urls() -> list[str]:
    """The site's Redis servers: channel layer hosts and a redis:// Celery broker."""
    urls = []
    for layer in getattr(settings, "CHANNEL_LAYERS", {}).values():
        for host in layer.get("CONFIG", {}).get("hosts", []):
            address = host.get("address") if isinstance(host, dict) else host
            if isinstance(address, str) and address.startswith(("redis://", "rediss://")):
                urls.append(address)
    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if broker.startswith(("redis://", "rediss://")):
        urls.append(broker)
    return list(dict.fromkeys(urls))


def check_redis() -> Check:
    urls = redis_urls()
    for url in urls:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
            client.ping()
    return True, "ok" if urls else "not configured"


def check_consumers() -> Check:
    """Every run_fastmon that reported must be fresh and connected; none at all is down too."""
    stale_before = timezone.now() - timedelta(seconds=fastmon_settings.HEALTH_CONSUMER_STALE_S)
    consumers = {}
    ok = True
    for status in ConsumerStatus.objects.order_by("agent_name"):
        fresh = status.updated_at >= stale_before
        ok = ok and fresh and status.broker_connected
        consumers[status.agent_name] = {
            "broker_connected": status.broker_connected,
            "last_message_at": status.last_message_at and status.last_message_at.isoformat(),
            "updated_at": status.updated_at.isoformat(),
            "fresh": fresh,
            "pid": status.pid,
            "hostname": status.hostname,
        }
    if not consumers:
        return not fastmon_settings.HEALTH_REQUIRE_CONSUMER, "no run_fastmon reports"
    return ok, consumers


def check_outbox() -> Check:
    pending, oldest = outbox_lag()
    return pending <= fastmon_settings.HEALTH_MAX_OUTBOX_PENDING, {
        "pending": pending,
        "oldest_s": oldest,
    }


def check_dead_letters() -> Check:
    window = fastmon_settings.HEALTH_DEAD_LETTER_WINDOW_S
    recent = DeadLetter.objects.filter(
        received_at__gte=timezone.now() - timedelta(seconds=window)
    ).count()
    return recent <= fastmon_settings.HEALTH_MAX_DEAD_LETTERS, {
        "new": recent,
        "window_s": window,
    }


CHECKS: dict[str, Callable[[], Check]] = {
    "database": check_database,
    "redis": check_redis,
    "consumers": check_consumers,
    "outbox": check_outbox,
    "dead_letters": check_dead_letters,
}


def readiness() -> dict[str, Any]:
    """Every check, each failing on its own: a check that raises is unhealthy, with the error."""
    results = {}
    for name, check in CHECKS.items():
        try:
            ok, detail = check()
        except Exception as exc:  # whatever breaks a check is its answer
            ok, detail = False, f"{type(exc).__name__}: {exc}".strip()
        results[name] = {"ok": ok, "detail": detail}
    healthy = all(result["ok"] for result in results.values())
    return {"status": "ok" if healthy else "unhealthy", "checks": results}


def live(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is looked at."""
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    report = readiness()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
