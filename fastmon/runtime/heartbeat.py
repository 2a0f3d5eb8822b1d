"""run_fastmon's reports on itself: heartbeats to swf-monitor and its ConsumerStatus row.

Both run in daemon threads of their own, so a slow or absent monitor or database never delays a
batch. The heartbeat is what every testbed agent sends (``docs/wire-formats.md``): a POST to
``{SWF_MONITOR_URL}/api/systemagents/heartbeat/`` every HEARTBEAT_INTERVAL_S; no URL, none sent.
The status row is for fastmon's own health checks, which run in other processes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from typing import Any, Protocol

from django.db import DatabaseError, connection
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.models import ConsumerStatus
from fastmon.outbox.bodies import heartbeat_payload
from fastmon.outbox.swf_monitor import send_heartbeat
from fastmon.retry import backoff_delay


class Connected(Protocol):
    """What the reporter reads of a broker connection."""

    @property
    def connected(self) -> bool: ...


class Reported(Protocol):
    """What the reporter reads of the process it reports on (the consumer)."""

    started: threading.Event
    last_message_at: datetime | None
    transport: Connected


logger = logging.getLogger("fastmon.heartbeat")


class StatusReporter:
    """The two reporting threads of one consumer, which only read what ``Reported`` names; ``stop``
    removes its row and says EXITED."""

    def __init__(self, consumer: Reported) -> None:
        self.consumer = consumer
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        loops = [self._status_loop]
        if fastmon_settings.SWF_MONITOR_URL:
            loops.append(self._heartbeat_loop)
        for loop in loops:
            thread = threading.Thread(target=loop, name=f"fastmon{loop.__name__}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        if not self.threads:
            return
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=2.0)  # daemons: a request in flight is not worth waiting for
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

    def _heartbeat_loop(self) -> None:
        attempt = 0
        delay = 0.0
        while not self.stopping.wait(delay):
            interval = fastmon_settings.HEARTBEAT_INTERVAL_S
            try:
                send_heartbeat(self.payload())
                attempt, delay = 0, interval
            except Exception as exc:  # OSError mostly; the thread must outlive anything
                # Soon at first (the monitor marks an agent EXITED after three silent minutes),
                # doubling up to the regular interval.
                delay = backoff_delay(attempt, cap=interval)
                attempt += 1
                logger.warning("heartbeat to swf-monitor failed (%s); next in %.1fs", exc, delay)

    def _status_loop(self) -> None:
        """Own database connection (Django's are per thread), closed after a failure."""
        try:
            while not self.stopping.is_set():
                self._write_status()
                self.stopping.wait(fastmon_settings.CONSUMER_STATUS_INTERVAL_S)
        finally:
            connection.close()

    def _write_status(self) -> None:
        try:
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
        except DatabaseError as exc:
            logger.warning("consumer status not written: %s", exc)
            connection.close()
