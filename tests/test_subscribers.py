"""Subscribers (#9): registration over the STOMP control destination, routed delivery through
the outbox against the real ActiveMQ, leases, and a failing destination that holds up nobody."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import stomp
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from fastmon.inbound.messages import InboundMessage, Outcome
from fastmon.ingest.pipeline import ingest_batch, ingest_message
from fastmon.models import DeadLetter, OutboxMessage, StfFile, Subscriber
from fastmon.outbox.relay import relay_outbox
from fastmon.sampling.policy import TfRange
from fastmon.sampling.samples import SamplePlan, record_tf_samples
from fastmon.subscribers.rules import SampleFacts, parse_subscription, selects
from fastmon.subscribers.service import save_subscriber
from fastmon.testing.broker import Collector, subscribed
from fastmon.testing.messages import example
from fastmon.transport.stomp import StompTransport
from tests.conftest import ServiceProcess, broker_login, wait_until
from tests.test_consumer import consumer_settings, publish

pytestmark = pytest.mark.django_db(transaction=True)

RANGES = [TfRange(10 * n, 10 * n + 4, file_size_bytes=5000) for n in range(7)]


def announcement(run: int, sequence: int, substate: str = "physics") -> str:
    return json.dumps(example(
        "stf_gen", run_id=run, sequence=sequence, filename=f"swf.{run}.{sequence:06d}.stf",
        substate=substate,
    ))  # fmt: skip


def sample_all() -> list[str]:
    """What the sampling task does for each stored STF; returns the TF sample names."""
    stfs = StfFile.objects.select_related("run").filter(tf_samples__isnull=True)
    return [s.tf_filename for s in record_tf_samples([SamplePlan(stf, RANGES) for stf in stfs])]


def expected(names: list[str], filters: dict, fraction: float, substates: dict[str, str]) -> set:
    """The names a subscriber must get, by the rule itself (``fastmon.subscribers.rules``)."""
    chosen = set()
    for name in names:
        stf = name.split("_tf_")[0]
        facts = SampleFacts(
            kind="tf_file_registered", tf_filename=name, run_number=int(stf.split(".")[1]),
            namespace="epic-fastmon", state="run", substate=substates.get(stf, "physics"),
        )  # fmt: skip
        if selects(filters, fraction, facts):
            chosen.add(name)
    return chosen


class Requester:
    """A client of the control destination: sends requests, reads replies on a temp queue."""

    def __init__(self, address: tuple[str, int], control: str) -> None:
        self.control = control
        self.connection = stomp.Connection([address], auto_decode=False)
        self.replies = Collector()
        self.connection.set_listener("replies", self.replies)
        self.connection.connect(*broker_login(), wait=True)
        self.connection.subscribe("/temp-queue/replies", id="r", ack="auto",
                                  headers={"receipt": "ready"})  # fmt: skip
        self.replies.wait_for_receipt("ready")

    def ask(self, request: dict) -> tuple[dict, dict]:
        correlation = uuid.uuid4().hex
        self.connection.send(self.control, json.dumps(request), headers={
            "reply-to": "/temp-queue/replies", "correlation-id": correlation, "persistent": "true",
        })  # fmt: skip
        [frame] = self.replies.frames_received(1, timeout=15, settle=0)
        assert frame.headers["correlation-id"] == correlation
        return json.loads(frame.body), frame.headers


@pytest.fixture
def requester(stomp_address: tuple[str, int]) -> Iterator[Requester]:
    client = Requester(stomp_address, f"/queue/fastmon.test.control.{uuid.uuid4().hex[:8]}")
    yield client
    client.connection.disconnect()


def test_a_subscriber_registered_over_stomp_gets_exactly_what_it_selects_until_it_leaves(
    start_process: Callable[..., ServiceProcess],
    stomp_address: tuple[str, int],
    unique_topic: str,
    requester: Requester,
) -> None:
    outbound = f"{unique_topic}.out"
    changes = {"CONTROL_DESTINATION": requester.control, "PUBLISH_DESTINATION": outbound}
    consumer = start_process(consumer_settings(unique_topic, **changes))
    consumer.wait_for_log(f"subscribed to {requester.control}")
    queue_name = f"/queue/fastmon.test.sub.{uuid.uuid4().hex[:8]}"
    filters = {"run_numbers": [7001], "substates": ["physics"]}
    request = {"msg_type": "subscribe", "name": "fp", "destination": queue_name,
               "filters": filters, "fraction": 0.5}  # fmt: skip

    with (
        override_settings(FASTMON={**settings.FASTMON, **changes}),
        subscribed(stomp_address, broker_login(), queue_name) as (_, deliveries),
        subscribed(stomp_address, broker_login(), outbound) as (_, published),
    ):
        reply, _ = requester.ask(request)
        assert reply["msg_type"] == "subscribe_reply" and reply["ok"] is True, reply
        assert reply["subscriber"]["filters"] == filters
        assert reply["subscriber"]["expires_at"]  # the default lease

        # Two runs; in the wanted run, one STF taken in another substate.
        substates = {"swf.7001.000003": "calib"}
        bodies = [announcement(7001, n, substates.get(f"swf.7001.{n:06d}", "physics"))
                  for n in range(1, 7)] + [announcement(7002, n) for n in range(1, 4)]  # fmt: skip
        publish(unique_topic, bodies, stomp_address)
        wait_until(lambda: StfFile.objects.count() == 9, 20, "nine STFs", context=consumer.output)
        names = sample_all()
        assert len(names) == 63
        want = expected(names, filters, 0.5, substates)
        assert 0 < len(want) < 5 * 7  # the filters (5 STFs of 7 samples) and the fraction bite

        got = [json.loads(f.body)["tf_filename"] for f in deliveries.frames_received(len(want))]
        assert sorted(got) == sorted(want)  # exactly those, each once
        assert len(published.frames_received(63)) == 63  # everyone else still gets everything
        wait_until(lambda: Subscriber.objects.get(name="fp").delivered_count == len(want), 10,
                   "the delivered counter")  # fmt: skip

        reply, _ = requester.ask({"msg_type": "unsubscribe", "name": "fp"})
        assert reply == {"msg_type": "unsubscribe_reply", "ok": True, "name": "fp", "removed": True}
        publish(unique_topic, [announcement(7001, n) for n in range(7, 10)], stomp_address)
        wait_until(lambda: StfFile.objects.count() == 12, 20, "three more STFs")
        sample_all()
        assert len(published.frames_received(21)) == 21
        assert deliveries.frames_received(0, settle=1.0) == []

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0


def test_an_invalid_request_gets_a_reply_saying_why_and_a_dead_letter(
    start_process: Callable[..., ServiceProcess], unique_topic: str, requester: Requester
) -> None:
    consumer = start_process(consumer_settings(unique_topic, CONTROL_DESTINATION=requester.control))
    consumer.wait_for_log(f"subscribed to {requester.control}")

    reply, _ = requester.ask({"msg_type": "subscribe", "name": "x",
                              "destination": "/topic/epictopic", "fraction": 3})  # fmt: skip
    assert reply["msg_type"] == "subscribe_reply" and reply["ok"] is False
    assert set(reply["errors"]) == {"destination", "fraction"}
    assert "fastmon's own destinations" in reply["errors"]["destination"]
    reply, _ = requester.ask({"msg_type": "subscribe", "name": "x"})
    assert reply["errors"] == {"destination": "this field is required"}

    requester.connection.send(requester.control, "{not json", headers={
        "reply-to": "/temp-queue/replies", "correlation-id": "c"})  # fmt: skip
    [frame] = requester.replies.frames_received(1, timeout=15, settle=0)
    assert json.loads(frame.body)["ok"] is False and "not JSON" in json.loads(frame.body)["error"]

    wait_until(lambda: DeadLetter.objects.count() == 3, 10, "three dead letters")
    assert not Subscriber.objects.exists()


@pytest.fixture
def stfs() -> list[StfFile]:
    ingest_message(json.dumps(example("run_imminent", run_id=7001)))
    for sequence in (1, 2, 3):
        ingest_message(announcement(7001, sequence))
    return list(StfFile.objects.select_related("run").order_by("sequence"))


def subscribe(name: str, destination: str) -> Subscriber:
    return save_subscriber(
        parse_subscription({"name": name, "destination": destination}), by="test"
    )


def test_a_destination_the_broker_refuses_holds_up_nobody_and_is_dropped_in_the_end(
    stomp_address: tuple[str, int], unique_topic: str, stfs: list[StfFile]
) -> None:
    good_queue = f"/queue/fastmon.test.good.{uuid.uuid4().hex[:8]}"
    # A requester's temporary queue whose connection is gone: the broker refuses sends to it.
    gone = f"/remote-temp-queue/ID:gone-{uuid.uuid4().hex[:8]}-1:1:1"
    changes = {"PUBLISH_DESTINATION": unique_topic, "SUBSCRIBER_MAX_FAILURES": 2,
               "RETRY_MIN_S": 30.0}  # fmt: skip
    transport = StompTransport()
    with (
        override_settings(FASTMON={**settings.FASTMON, **changes}),
        subscribed(stomp_address, broker_login(), good_queue) as (_, good),
        subscribed(stomp_address, broker_login(), unique_topic) as (_, published),
    ):
        transport.connect()
        dead, alive = subscribe("dead", gone), subscribe("alive", good_queue)
        record_tf_samples([SamplePlan(stfs[0], RANGES[:3])])

        assert relay_outbox(transport) == 6  # the topic's three and alive's three
        assert len(good.frames_received(3)) == 3 and len(published.frames_received(3)) == 3
        waiting = OutboxMessage.objects.filter(subscriber=dead)
        assert waiting.filter(sent_at=None, next_attempt_at__gt=timezone.now()).count() == 3
        assert "does not exist" in waiting.first().last_error

        # While "dead" backs off, new samples still reach everyone else at once.
        record_tf_samples([SamplePlan(stfs[1], RANGES[:2])])
        assert relay_outbox(transport) == 4
        assert len(good.frames_received(2)) == 2
        alive.refresh_from_db()
        assert (alive.delivered_count, alive.dropped_count) == (5, 0) and alive.last_delivery_at

        # Its second failure in a row: set inactive, its backlog dropped and counted.
        waiting.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        assert relay_outbox(transport) == 0
        dead.refresh_from_db()
        assert (dead.active, dead.delivered_count, dead.dropped_count) == (False, 0, 5)
        assert "kept failing" in dead.last_error
        assert not waiting.filter(failed_at=None).exists()
        record_tf_samples([SamplePlan(stfs[2], RANGES)])
        assert not OutboxMessage.objects.filter(subscriber=dead, failed_at=None).exists()

        # A control reply to a requester gone meanwhile is given up the same way.
        reply = OutboxMessage.objects.create(destination=gone, msg_type="subscribe_reply",
                                             body="{}", attempts=1)  # fmt: skip
        relay_outbox(transport)
        reply.refresh_from_db()
        assert reply.failed_at and reply.sent_at is None and "kept failing" in reply.last_error
        transport.disconnect()


def test_a_lease_not_renewed_lapses_and_a_new_request_revives_it(stfs: list[StfFile]) -> None:
    subscriber = subscribe("leased", "/queue/fastmon.test.leased")
    assert subscriber.expires_at > timezone.now()
    Subscriber.objects.filter(pk=subscriber.pk).update(expires_at=timezone.now())

    record_tf_samples([SamplePlan(stfs[0], RANGES[:2])])
    subscriber.refresh_from_db()
    assert not subscriber.active and "lease expired" in subscriber.last_error
    assert not OutboxMessage.objects.filter(subscriber=subscriber).exists()

    subscribe("leased", "/queue/fastmon.test.leased")
    record_tf_samples([SamplePlan(stfs[1], RANGES[:1])])
    assert OutboxMessage.objects.filter(subscriber__name="leased").count() == 1


def test_control_requests_the_database_could_not_store_are_dead_letters_not_crashes() -> None:
    control = settings.FASTMON.get("CONTROL_DESTINATION", "/queue/fastmon.control")
    reply = {"destination": control, "reply-to": "/temp-queue/r"}

    def request(body: dict, **headers: str) -> InboundMessage:
        return InboundMessage(json.dumps(body), {**reply, **headers})

    good = {"msg_type": "subscribe", "name": "ok", "destination": "/queue/fastmon.ok"}
    batch = [
        request({"msg_type": "x" * 120}),
        request({**good, "name": "long", "destination": "/queue/fastmon." + "x" * 300}),
        request({**good, "name": "forever", "idle_expiry_s": 1e12}),
        request({**good, "name": "nul", "filters": {"namespaces": ["a\u0000"]}}),
        request(good, **{"correlation-id": "c" * 400}),
        request(good, **{"reply-to": "/temp-queue/" + "r" * 300}),
    ]
    outcomes = [result.outcome for result in ingest_batch(batch).results]

    assert outcomes == [Outcome.DEAD_LETTERED] * 4 + [Outcome.STORED] * 2
    assert list(Subscriber.objects.values_list("name", flat=True)) == ["ok"]
    assert DeadLetter.objects.count() == 4
    replies = OutboxMessage.objects.filter(destination="/temp-queue/r").order_by("id")
    assert [r.msg_type for r in replies] == ["control_reply"] + ["subscribe_reply"] * 4
    assert [json.loads(r.body)["ok"] for r in replies] == [False] * 3 + [False, True]


def test_a_renewed_subscription_takes_its_backlog_to_its_new_destination(
    stfs: list[StfFile],
) -> None:
    subscriber = subscribe("moving", "/remote-temp-queue/ID:old-1:1:1")
    record_tf_samples([SamplePlan(stfs[0], RANGES[:2])])
    backlog = OutboxMessage.objects.filter(subscriber=subscriber)
    backlog.update(attempts=3, next_attempt_at=timezone.now() + timedelta(hours=1))

    subscribe("moving", "/queue/fastmon.test.moved")
    assert (
        list(backlog.values_list("destination", "attempts", "next_attempt_at"))
        == [
            ("/queue/fastmon.test.moved", 0, None),
        ]
        * 2
    )
