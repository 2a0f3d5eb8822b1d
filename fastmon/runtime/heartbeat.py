"""run_fastmon's reports on itself: heartbeats to swf-monitor and its ConsumerStatus row.

Both are loops of their own (``Loop``), so a slow or absent monitor or database never delays a
batch. The heartbeat is what every testbed agent sends (``fastmon.swf_monitor.heartbeat``)
every HEARTBEAT_INTERVAL_S; no SWF_MONITOR_URL, none sent. The status row is for fastmon's own
health checks, which run in other processes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from typing import Any, Protocol

from django.db import DatabaseError
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import ConsumerStatus
from fastmon.outbox.bodies import heartbeat_payload
from fastmon.retry import backoff_delay
from fastmon.runtime.loop import Loop
from fastmon.swf_monitor.heartbeat import send_heartbeat

logger = logging.getLogger("fastmon.heartbeat")


class Connected(Protocol):
    """What the reporter reads of a broker connection."""

    @property
    def connected(self) -> bool: ...


class Reported(Protocol):
    """What the reporter reads of the process it reports on (the consumer)."""

    started: threading.Event
    last_message_at: datetime | None
    transport: Connected


class StatusReporter:
    """The two reporting loops of one consumer, which only read what ``Reported`` names;
    ``stop`` removes its row and says EXITED."""

    def __init__(self, consumer: Reported) -> None:
        self.consumer = consumer
        self.loops: list[Loop] = [_StatusRow(self), _Heartbeat(self)]
        self.started = False

    def start(self) -> None:
        self.started = True
        for loop in self.loops:
            loop.start()

    def stop(self, deadline: float) -> None:
        if not self.started:
            return
        for loop in self.loops:
            loop.stop(deadline)
        try:
            ConsumerStatus.objects.filter(agent_name=fastmon_settings.AGENT_NAME).delete()
        except DatabaseError as exc:
            logger.warning("could not remove this consumer's status row: %s", exc)
        if fastmon_settings.SWF_MONITOR_URL:
            try:
                send_heartbeat(self.payload("EXITED"), timeout=2.0)
            except OSError as exc:
                logger.warning("last heartbeat not sent: %s", exc)

    def state(self) -> str:
        if not self.consumer.started.is_set():
            return "STARTING"
        last = self.consumer.last_message_at
        recent = timezone.now().timestamp() - fastmon_settings.HEARTBEAT_INTERVAL_S
        return "PROCESSING" if last and last.timestamp() >= recent else "READY"

    def payload(self, state: str | None = None) -> dict[str, Any]:
        last = self.consumer.last_message_at
        return heartbeat_payload(
            agent_name=fastmon_settings.AGENT_NAME,
            connected=self.consumer.transport.connected,
            state=state or self.state(),
            namespace=fastmon_settings.NAMESPACE,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            description=f"last message {last.isoformat() if last else 'none yet'}",
        )


class _Heartbeat(Loop):
    name = "heartbeat"
    what = "heartbeat"
    logger = logger
    stop_within = 2.0  # a request in flight is not worth waiting for

    def __init__(self, reporter: StatusReporter) -> None:
        super().__init__()
        self.reporter = reporter

    def enabled(self) -> bool:
        return bool(fastmon_settings.SWF_MONITOR_URL)

    def iterate(self) -> float:
        send_heartbeat(self.reporter.payload())
        return fastmon_settings.HEARTBEAT_INTERVAL_S

    def retry_delay(self, attempt: int) -> float:
        """Soon at first (the monitor marks an agent EXITED after three silent minutes),
        doubling up to the regular interval."""
        return backoff_delay(attempt, cap=fastmon_settings.HEARTBEAT_INTERVAL_S)

    def failed(self, exc: Exception, delay: float) -> None:
        logger.warning("heartbeat to swf-monitor failed (%s); next in %.1fs", exc, delay)


class _StatusRow(Loop):
    name = "status"
    what = "consumer status"
    logger = logger
    stop_within = 2.0

    def __init__(self, reporter: StatusReporter) -> None:
        super().__init__()
        self.consumer = reporter.consumer

    def iterate(self) -> float:
        ConsumerStatus.objects.update_or_create(
            agent_name=fastmon_settings.AGENT_NAME,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "broker_connected": self.consumer.transport.connected,
                "last_message_at": self.consumer.last_message_at,
                "updated_at": timezone.now(),
            },
        )
        return fastmon_settings.CONSUMER_STATUS_INTERVAL_S

    def retry_delay(self, attempt: int) -> float:
        return fastmon_settings.CONSUMER_STATUS_INTERVAL_S

    def failed(self, exc: Exception, delay: float) -> None:
        logger.warning("consumer status not written: %s", exc)
