"""The live websocket against the real Redis channel layer and PostgreSQL: replay after a
sequence number, then live events, with no silent gap."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from prometheus_client import REGISTRY

from fastmon.live import push
from fastmon.live.frames import event_frame
from fastmon.models import LiveEvent
from fastmon.testing.announcing import announce
from fastmon.testing.messages import stf_name
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
RUN = 100300
OVERFLOWED = "fastmon_live_events_overflowed_total"


def fastmon(**changes: Any) -> override_settings:
    return override_settings(FASTMON={**settings.FASTMON, **changes})


@pytest.fixture(autouse=True)
def no_checks() -> Any:
    """The live mechanics alone: quality checks' events would join every stream here
    (tests/quality/test_evaluate.py and the browser test follow those)."""
    with fastmon(CHECKS=[]):
        yield


@pytest.fixture
def connect() -> Any:
    """Open websockets on the test site's ASGI application (as a host site routes them)."""

    async def open_socket(
        query: str = "", user: User | None = None, headers: dict[str, str] | None = None
    ) -> WebsocketCommunicator:
        path = f"/{settings.FASTMON.get('WEBSOCKET_PATH', 'fastmon/ws/live/')}?{query}"
        encoded = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        communicator = WebsocketCommunicator(application, path, headers=encoded)
        if user is not None:
            communicator.scope["user"] = user
        return communicator

    return open_socket


async def received(communicator: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    """The next ``count`` events, read from as many frames as they come in."""
    events: list[dict[str, Any]] = []
    while len(events) < count:
        frame = await communicator.receive_json_from(timeout=5)
        if frame["type"] != "live":  # the end of the replay
            assert frame["type"] == "events", frame
            events.extend(frame["events"])
    return events


async def test_a_client_gets_what_it_missed_then_live_events(connect) -> None:
    await sync_to_async(announce)("stf_gen", RUN, 1, 2, 3)
    communicator = await connect("since=0")
    connected, _ = await communicator.connect()
    assert connected
    replayed = await received(communicator, 4)  # the run's creation, then one per STF
    assert await communicator.receive_json_from() == {
        "type": "live",
        "sequence": replayed[-1]["sequence"],
    }
    assert [e["kind"] for e in replayed] == ["run", "stf", "stf", "stf"]
    sequences = [e["sequence"] for e in replayed]
    assert sequences == sorted(sequences)

    await sync_to_async(announce)("stf_gen", RUN, 4)
    [pushed] = await received(communicator, 1)
    assert pushed["sequence"] > sequences[-1]
    assert pushed["payload"]["stfs"][0]["stf_filename"] == stf_name(RUN, 4)
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


async def test_a_client_without_since_starts_from_now(connect) -> None:
    await sync_to_async(announce)("stf_gen", RUN, 1)
    communicator = await connect()
    await communicator.connect()
    assert (await communicator.receive_json_from())["type"] == "live"
    assert await communicator.receive_nothing(0.3)
    await sync_to_async(announce)("stf_gen", RUN, 2)
    [pushed] = await received(communicator, 1)
    assert pushed["payload"]["stfs"][0]["sequence"] == 2
    await communicator.disconnect()


async def test_events_whose_push_was_lost_are_read_back_in_order(connect) -> None:
    communicator = await connect("since=0")
    await communicator.connect()
    # Stored but never pushed (a process died between commit and push) ...
    lost = await sync_to_async(LiveEvent.objects.create)(kind="alarm", payload={"message": "x"})
    # ... then a later event is pushed: the client gets the lost one first.
    await sync_to_async(announce)("stf_gen", RUN, 1)
    events = await received(communicator, 3)
    assert events[0]["sequence"] == lost.pk
    assert [e["kind"] for e in events] == ["alarm", "run", "stf"]
    await communicator.disconnect()


async def test_a_lost_push_with_nothing_after_it_arrives_within_the_poll(connect) -> None:
    with fastmon(LIVE_POLL_S=0.2):
        communicator = await connect("since=0")
        await communicator.connect()
        await sync_to_async(LiveEvent.objects.create)(kind="alarm", payload={"message": "x"})
        [event] = await received(communicator, 1)
        assert event["kind"] == "alarm"
        await communicator.disconnect()


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_a_slow_client_overflowing_its_queue_loses_nothing_and_is_told(connect) -> None:
    clients, overflowed = metric("fastmon_websocket_clients"), metric(OVERFLOWED)
    with fastmon(LIVE_CLIENT_QUEUE=2):
        communicator = await connect("since=0")
        await communicator.connect()
        assert (await communicator.receive_json_from())["type"] == "live"
        assert metric("fastmon_websocket_clients") == clients + 1

        def store_without_push() -> list[dict[str, Any]]:
            events = [LiveEvent(kind="alarm", payload={"message": str(n)}) for n in range(10)]
            LiveEvent.objects.bulk_create(events)
            return [event_frame(e) for e in events]

        frames = await sync_to_async(store_without_push)()
        # Ten events in one push: two fit the queue, eight overflow.
        await sync_to_async(push.broadcast)(frames)
        events, status = [], None
        while len(events) < 10 or status is None:
            frame = await communicator.receive_json_from(timeout=5)
            if frame["type"] == "status":
                status = frame
            elif frame["type"] == "events":
                events.extend(frame["events"])
        assert [e["payload"]["message"] for e in events] == [str(n) for n in range(10)]
        assert status["overflowed"] == 8
        assert metric(OVERFLOWED) == overflowed + 8
        await communicator.disconnect()
    assert metric("fastmon_websocket_clients") == clients


async def test_filters_by_run_and_kind(connect) -> None:
    by_run = await connect(f"since=0&run={RUN + 1}")
    by_kind = await connect("since=0&kinds=run")
    for communicator in (by_run, by_kind):
        await communicator.connect()
    await sync_to_async(announce)("stf_gen", RUN, 1)
    await sync_to_async(announce)("stf_gen", RUN + 1, 1)
    assert {e["run_number"] for e in await received(by_run, 2)} == {RUN + 1}
    assert [e["payload"]["run_number"] for e in await received(by_kind, 2)] == [RUN, RUN + 1]
    for communicator in (by_run, by_kind):
        assert await communicator.receive_nothing(0.3)
        await communicator.disconnect()


@pytest.mark.parametrize("query", ["since=-1", "since=x", "kinds=nonsense", "run=abc"])
async def test_a_bad_query_is_refused(connect, query: str) -> None:
    communicator = await connect(query)
    connected, _ = await communicator.connect()  # accepted, then closed: a browser sees the code
    assert connected
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4400}


async def test_the_login_rule_of_the_pages_holds_for_the_websocket(connect) -> None:
    with fastmon(PAGES_REQUIRE_LOGIN=True):
        anonymous = await connect()
        connected, _ = await anonymous.connect()
        assert connected
        assert await anonymous.receive_output() == {"type": "websocket.close", "code": 4403}
        user = await sync_to_async(User.objects.create_user)("shifter")
        logged_in = await connect(user=user)
        connected, _ = await logged_in.connect()
        assert connected
        await logged_in.disconnect()


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"host": "monitor.example:8443", "origin": "https://monitor.example:8443"}, True),
        ({"host": "monitor.example:8443", "origin": "https://evil.example"}, False),
        ({"host": "monitor.example:8443", "origin": "null"}, False),
        ({"host": "127.0.0.1:8002", "origin": "https://pages.trusted.example"}, True),
        ({"host": "127.0.0.1:8002", "origin": "https://a.wild.example"}, True),
        ({"host": "127.0.0.1:8002", "origin": "http://a.wild.example"}, False),
        ({"host": "127.0.0.1:8002"}, True),  # no Origin: not a browser, e.g. fastmon-tail
    ],
)
async def test_a_browser_handshake_is_accepted_only_from_the_site_itself(
    connect, headers: dict[str, str], allowed: bool
) -> None:
    trusted = ["https://pages.trusted.example", "https://*.wild.example"]
    with override_settings(CSRF_TRUSTED_ORIGINS=trusted):
        communicator = await connect(headers=headers)
        connected, _ = await communicator.connect()
        assert connected  # accepted, then closed when refused: a browser sees the code
        if allowed:
            assert (await communicator.receive_json_from(timeout=5))["type"] == "live"
            await communicator.disconnect()
        else:
            assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}


async def test_too_much_missed_is_skipped_with_a_notice(connect) -> None:
    def store(count: int) -> None:
        with_transaction = [LiveEvent(kind="alarm", payload={"n": n}) for n in range(count)]
        LiveEvent.objects.bulk_create(with_transaction)

    await sync_to_async(store)(30)
    with fastmon(LIVE_REPLAY_MAX=10):
        communicator = await connect("since=0")
        await communicator.connect()
        notice = await communicator.receive_json_from(timeout=5)
        assert notice["type"] == "skipped"
        assert [e["payload"]["n"] for e in await received(communicator, 10)] == list(range(20, 30))
        skipped = LiveEvent.objects.filter(id__gt=notice["after"], id__lte=notice["upto"])
        assert await sync_to_async(skipped.count)() == 20
        await communicator.disconnect()
