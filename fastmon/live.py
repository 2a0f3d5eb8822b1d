"""The live pages' push path: the shape of an event on the wire and its fan-out through the
Channels layer. Events are stored first (``services.record_live_events``); this only tells the
connected pages, so a push that never arrives costs latency, not data."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from fastmon.models import LiveEvent

logger = logging.getLogger("fastmon.live")

GROUP = "fastmon.live"


def event_frame(event: LiveEvent) -> dict[str, Any]:
    """One event as pages, the API and ``fastmon_tail --json`` see it."""
    return {
        "sequence": event.pk,
        "kind": event.kind,
        "run_number": event.run_number,
        "payload": event.payload,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
    }


def broadcast(frames: list[dict[str, Any]]) -> None:
    """Hand committed events to every connected page (``LiveEventsConsumer``)."""
    layer = get_channel_layer()
    if layer is None or not frames:
        return
    try:
        async_to_sync(layer.group_send)(GROUP, {"type": "live.events", "events": frames})
    except Exception:
        # The pages notice the gap at the next event, or within LIVE_POLL_S, and read it back.
        logger.warning("could not push %d live events", len(frames), exc_info=True)
