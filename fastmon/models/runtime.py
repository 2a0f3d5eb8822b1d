"""The consumers' status rows, read by fastmon's health checks in other processes."""

from __future__ import annotations

from django.db import models


class ConsumerStatus(models.Model):
    """A run_fastmon's own report of how it is, refreshed every CONSUMER_STATUS_INTERVAL_S, so
    health checks in other processes (web, ``fastmon_health``) can see it; removed on a clean
    stop, so a row that stops moving means a consumer that died."""

    agent_name = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    broker_connected = models.BooleanField()
    last_message_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.agent_name} ({'connected' if self.broker_connected else 'disconnected'})"
