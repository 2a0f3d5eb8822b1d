"""The live websocket while the database is away, under the real server (uvicorn) with its
database reached through a proxy the test cuts: a connected client keeps its socket and gets,
once the database returns, the event it could not be told of meanwhile; a client connecting
meanwhile is closed with 1011, and reconnects."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from fastmon.live.events import newest_event_sequence
from fastmon.models import LiveEvent
from fastmon.testing.network import TcpProxy, free_port
from fastmon.testing.processes import ServiceProcess

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_connected_client_outlives_the_database_going_away(
    start_process: Callable[..., ServiceProcess], db_proxy: TcpProxy, tmp_path: Path
) -> None:
    port = free_port()
    argv = ["-m", "uvicorn", "tests.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    server = start_process({"LIVE_POLL_S": 0.5, "CHECKS": []}, db_port=db_proxy.port,
                           command="uvicorn", argv=argv)  # fmt: skip
    server.wait_for_log("Uvicorn running")
    url = f"ws://127.0.0.1:{port}/fastmon/ws/live/"
    with connect(f"{url}?since={newest_event_sequence()}") as websocket:
        assert json.loads(websocket.recv(timeout=10))["type"] == "live"

        db_proxy.cut()
        server.wait_for_log("the database is unavailable", timeout=10)  # the poll's read back
        with connect(url) as late, pytest.raises(ConnectionClosed) as closed:
            late.recv(timeout=10)  # it cannot start: closed for the page to come back later
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        # Stored without a push (as one lost on the way): only a read back can send it.
        lost = LiveEvent.objects.create(kind="alarm", payload={"message": "while away"})

        db_proxy.restore()
        frame = json.loads(websocket.recv(timeout=10))  # at the next poll
    assert frame["type"] == "events"
    assert [e["sequence"] for e in frame["events"]] == [lost.pk]
    with connect(url) as again:  # the database back: connecting works again
        assert json.loads(again.recv(timeout=10))["type"] == "live"
