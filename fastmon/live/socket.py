"""The live pages' websocket: stored events after the client's last sequence, then live ones.

A client connects with ``?since=<last sequence seen>`` (the pages render the sequence their
HTML reflects), optionally ``run=<number>`` and ``kinds=stf,tf_samples``. It receives frames
``{"type": "events", "events": [...]}`` in sequence order without gaps: events the push path
lost or that overflowed the client's bounded queue are read back from the database, and
``{"type": "status", ...}`` frames say how many were, so nothing is dropped silently. A
``{"type": "live", "sequence": N}`` frame says the replay is over. The database away: a client
that is connecting is closed with 1011 (it reconnects and replays); one that is connected keeps
its socket, and what could not be read is read back at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from fastmon import access, metrics
from fastmon.conf import fastmon_settings
from fastmon.database.outages import TRANSIENT_DB_ERRORS
from fastmon.live.auth import origin_allowed
from fastmon.live.events import events_since, newest_event_sequence, replay_start
from fastmon.live.frames import event_frame
from fastmon.live.push import GROUP
from fastmon.models import LiveEvent

logger = logging.getLogger("fastmon.live")

FORBIDDEN = 4403  # close codes: 4000 + the HTTP status they stand for
BAD_REQUEST = 4400
INTERNAL_ERROR = 1011  # the websocket's own: the server could not go on (the database away)
REPLAY_PAGE = 500


class LiveEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        # The login rule reads the session: only worth a trip to the database when it applies.
        if not origin_allowed(self.scope) or (
            fastmon_settings.PAGES_REQUIRE_LOGIN
            and not await database_sync_to_async(access.may_read)(self.scope.get("user"))
        ):
            await self._refuse(FORBIDDEN)
            return
        try:
            since, self.run_number, self.kinds = _parse_query(self.scope["query_string"])
        except ValueError:
            await self._refuse(BAD_REQUEST)
            return
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(
            fastmon_settings.LIVE_CLIENT_QUEUE
        )
        self.overflowed = 0  # live events that found the queue full (read back later)
        self.read_back = 0  # events sent from the database after a gap
        self.behind = False  # the queue turned events away: read them back once it drains
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        # Joined before reading: an event committed meanwhile is in the group or in the read.
        # One trip to the database: a server restart reconnects every page at once.
        try:
            self.last_seen, skipped, replay = await database_sync_to_async(_opening)(since)
        except TRANSIENT_DB_ERRORS as exc:
            logger.warning("live websocket closed: the database is unavailable (%s)", exc)
            await self.close(code=INTERNAL_ERROR)
            return
        self.database_away = False
        self.sender = asyncio.create_task(self._send_loop(skipped, replay))
        metrics.WEBSOCKET_CLIENTS.inc()  # paired with the dec in disconnect, as the sender is

    async def _refuse(self, code: int) -> None:
        """A close code after the handshake: closed before it, a browser sees only an HTTP 403
        (1006), and cannot tell a bad query from a login needed."""
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)
        sender = getattr(self, "sender", None)
        if sender is not None:
            metrics.WEBSOCKET_CLIENTS.dec()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes old database connections around every handler, a thread hop per
        # message and client; pushing to 200 pages that cost more than the pushes.
        if message["type"] == "live.events":
            await self.live_events(message)
        else:
            await super().dispatch(message)

    async def live_events(self, message: dict[str, Any]) -> None:
        """A committed batch pushed by ``push.broadcast``: queued, never waited on."""
        for frame in message["events"]:
            try:
                self.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self.overflowed += 1
                metrics.LIVE_EVENTS_OVERFLOWED.inc()
                self.behind = True

    async def _send_loop(self, skipped: int | None, replay: list[dict[str, Any]]) -> None:
        if skipped is not None:
            await self.send_json({"type": "skipped", "after": skipped, "upto": self.last_seen})
        if replay:
            await self._send_frames(replay)
            self.last_seen = replay[-1]["sequence"]
            if len(replay) == REPLAY_PAGE:
                await self._reading(self._read_back(upto=None))
        await self.send_json({"type": "live", "sequence": self.last_seen})  # caught up
        while True:
            try:
                first = await asyncio.wait_for(self.queue.get(), fastmon_settings.LIVE_POLL_S)
            except TimeoutError:
                await self._reading(self._read_back(upto=None))  # a push lost on the way
                continue
            frames = [first]
            while not self.queue.empty() and len(frames) < REPLAY_PAGE:
                frames.append(self.queue.get_nowait())
            await self._reading(self._send_live(frames))
            if self.behind and self.queue.empty():
                self.behind = False
                await self._reading(self._read_back(upto=None))
                await self.send_json({"type": "status", "overflowed": self.overflowed,
                                      "read_back": self.read_back})  # fmt: skip

    async def _reading(self, step: Awaitable[None]) -> None:
        """A step that may read the database. Failing (the database away), it is left to the
        next poll, which reads back whatever it did not send: ``last_seen`` moves only once
        frames are sent, so nothing is skipped and the order holds. Said once an outage."""
        try:
            await step
        except TRANSIENT_DB_ERRORS as exc:
            if not self.database_away:
                logger.warning("live websocket: the database is unavailable (%s); reading "
                               "back at each poll until it returns", exc)  # fmt: skip
            self.database_away = True

    async def _send_live(self, frames: list[dict[str, Any]]) -> None:
        fresh = [f for f in frames if f["sequence"] > self.last_seen]
        if fresh and fresh[0]["sequence"] > self.last_seen + 1:
            # A gap: events still to come from the database, or sequence numbers a rolled-back
            # transaction used. Either way the database says which.
            await self._read_back(upto=fresh[0]["sequence"] - 1)
            fresh = [f for f in fresh if f["sequence"] > self.last_seen]
        if fresh:
            await self._send_frames(fresh)
            self.last_seen = fresh[-1]["sequence"]

    async def _read_back(self, upto: int | None) -> None:
        """Send stored events after ``last_seen`` (up to ``upto``), in pages."""
        while True:
            events = await database_sync_to_async(_events_after)(self.last_seen, upto)
            if self.database_away:
                logger.info("live websocket: the database is back; reading back what was missed")
                self.database_away = False
            if not events:
                if upto is not None:
                    self.last_seen = max(self.last_seen, upto)
                break
            self.read_back += len(events)
            await self._send_frames(events)
            self.last_seen = events[-1]["sequence"]

    async def _send_frames(self, frames: list[dict[str, Any]]) -> None:
        wanted = [f for f in frames if self._wants(f)]
        if wanted:
            await self.send_json({"type": "events", "events": wanted})

    def _wants(self, frame: dict[str, Any]) -> bool:
        if self.run_number is not None and frame["run_number"] not in (None, self.run_number):
            return False
        return not self.kinds or frame["kind"] in self.kinds


def _parse_query(query_string: bytes) -> tuple[int | None, int | None, set[str]]:
    params = parse_qs(query_string.decode("latin-1"))
    since = int(params["since"][0]) if params.get("since", [""])[0] else None
    run = int(params["run"][0]) if params.get("run", [""])[0] else None
    kinds = {k for k in params.get("kinds", [""])[0].split(",") if k}
    if (since is not None and since < 0) or not kinds <= set(LiveEvent.Kind.values):
        raise ValueError("since must be >= 0 and kinds known")
    return since, run, kinds


def _opening(since: int | None) -> tuple[int, int | None, list[dict[str, Any]]]:
    """Where a new client starts (now, or after ``since``, at most LIVE_REPLAY_MAX back), the
    sequence it skipped from if that was too far back, and the first page of its replay."""
    newest = newest_event_sequence()
    start = newest if since is None else min(since, newest)
    replay_from = replay_start(start, fastmon_settings.LIVE_REPLAY_MAX)
    skipped = start if replay_from != start else None
    return replay_from, skipped, _events_after(replay_from, None)


def _events_after(sequence: int, upto: int | None) -> list[dict[str, Any]]:
    events = events_since(sequence, REPLAY_PAGE, upto=upto)
    return [event_frame(event) for event in events]
