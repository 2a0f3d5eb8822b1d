"""The live pages' push path: committed events fanned out through the Channels layer. Events
are stored first (``events.record_live_events``); this only tells the connected pages, so a push
that never arrives costs latency, not data."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

logger = logging.getLogger("fastmon.live")

GROUP = "fastmon.live"
# Pushes waiting for the channel layer (Redis slow or away) before new ones are dropped.
MAX_PENDING_PUSHES = 100


def broadcast(frames: list[dict[str, Any]]) -> None:
    """Hand committed events to every connected page (``LiveEventsConsumer``), without waiting:
    the push goes out from this process's ``Pusher`` thread."""
    layer = get_channel_layer()
    if layer is not None and frames:
        _pusher.push(layer, frames)


class Pusher:
    """An event loop in a thread of its own, per process, that sends the pushes in order.

    Ingest calls ``broadcast`` as each batch commits; an ``async_to_sync`` push there made a new
    event loop per batch, and the Redis channel layer opens a connection per event loop: the
    commit waited for a Redis connection each time. One loop keeps the connection, and a commit
    only queues its push. A push that never arrives costs latency, not data: pages notice the
    gap at the next event, or within LIVE_POLL_S, and read it back.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._lock = threading.Lock()
        self._loop = loop
        self._pending = 0

    def push(self, layer: BaseChannelLayer, frames: list[dict[str, Any]]) -> None:
        with self._lock:
            if self._pending >= MAX_PENDING_PUSHES:
                logger.warning("%d live pushes waiting: %d events not pushed", self._pending,
                               len(frames))  # fmt: skip
                return
            self._pending += 1
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="fastmon-live-push",
                                 daemon=True).start()  # fmt: skip
            loop = self._loop
        asyncio.run_coroutine_threadsafe(self._send(layer, frames), loop)

    async def _send(self, layer: BaseChannelLayer, frames: list[dict[str, Any]]) -> None:
        try:
            await layer.group_send(GROUP, {"type": "live.events", "events": frames})
        except Exception:
            logger.warning("could not push %d live events", len(frames), exc_info=True)
        finally:
            with self._lock:
                self._pending -= 1


_pusher = Pusher()


def push_on(loop: asyncio.AbstractEventLoop) -> None:
    """Send this process's pushes on ``loop`` instead of a thread of their own: for a site
    whose channel layer belongs to one loop (the in-memory layer, which the demo's server loop
    owns)."""
    global _pusher
    _pusher = Pusher(loop)


def _forget_parents_pusher() -> None:
    """A forked process (the ingest process, a Celery worker) has none of its parent's
    threads: it starts a pusher of its own."""
    global _pusher
    _pusher = Pusher()


os.register_at_fork(after_in_child=_forget_parents_pusher)
