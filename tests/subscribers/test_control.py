"""Subscribers registered over the STOMP control destination (against the real ActiveMQ): a
subscriber gets exactly what it selects until it leaves; a bad request gets a reply saying why
and a dead letter, never a crash."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable, Iterable, Iterator

import pytest
import stomp
from django.conf import settings
from django.test import override_settings

from fastmon.inbound.messages import InboundMessage, Outcome
from fastmon.ingest.pipeline import ingest_batch
from fastmon.models import DeadLetter, OutboxMessage, StfFile, Subscriber
from fastmon.sampling.policy import TfRange
from fastmon.sampling.samples import SamplePlan, record_tf_samples
from fastmon.subscribers.rules import SampleFacts, own_destinations, selects
from fastmon.testing.broker import Collector, broker_login, subscribed
from fastmon.testing.messages import stf_body, stf_name
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RANGES = [TfRange(10 * n, 10 * n + 4, file_size_bytes=5000) for n in range(7)]


def sample_all() -> list[str]:
    """What the sampling task does for each stored STF; returns the TF sample names."""
    stfs = StfFile.objects.select_related("run").filter(tf_samples__isnull=True)
    return [s.tf_filename for s in record_tf_samples([SamplePlan(stf, RANGES) for stf in stfs])]


def expected(names: list[str], filters: dict, fraction: float, substates: dict[str, str]) -> set:
    """The names a subscriber must get, by the rule itself (``fastmon.subscribers.rules``)."""
    chosen = set()
    for name in names:
        stf = f"{name.split('_tf_')[0]}.stf"
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
    publish: Callable[[str, Iterable[str]], None],
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
        substates = {stf_name(7001, 3): "calib"}
        bodies = [
            stf_body("stf_gen", 7001, n, substate=substates.get(stf_name(7001, n), "physics"))
            for n in range(1, 7)
        ] + [stf_body("stf_gen", 7002, n) for n in range(1, 4)]
        publish(unique_topic, bodies)
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
        publish(unique_topic, [stf_body("stf_gen", 7001, n) for n in range(7, 10)])
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
        request({**good, "name": "unanswerable"}, **{"reply-to": "/temp-queue/" + "r" * 300}),
    ]
    outcomes = [result.outcome for result in ingest_batch(batch).results]

    assert outcomes == [Outcome.DEAD_LETTERED] * 4 + [Outcome.STORED, Outcome.DEAD_LETTERED]
    assert list(Subscriber.objects.values_list("name", flat=True)) == ["ok"]
    assert DeadLetter.objects.count() == 5
    replies = OutboxMessage.objects.filter(destination="/temp-queue/r").order_by("id")
    assert [r.msg_type for r in replies] == ["control_reply"] + ["subscribe_reply"] * 4
    assert [json.loads(r.body)["ok"] for r in replies] == [False] * 3 + [False, True]


def test_fastmons_own_destinations_are_never_a_subscribers_nor_a_reply_to(
    start_process: Callable[..., ServiceProcess],
    stomp_address: tuple[str, int],
    unique_topic: str,
    requester: Requester,
) -> None:
    """Every destination a setting names, the alarm topic (under a subscriber prefix, as by
    default) among them: a subscriber there is refused, and a request whose reply-to is there
    is refused unanswered, so nothing of fastmon's fills it."""
    unique = uuid.uuid4().hex[:8]
    alarms = f"/topic/fastmon.test.alarms.{unique}"
    own_settings = consumer_settings(
        unique_topic, CONTROL_DESTINATION=requester.control, ALARM_DESTINATION=alarms,
        PUBLISH_DESTINATION=f"/topic/fastmon.test.out.{unique}",
        FAST_PROCESSING_DESTINATIONS=[f"/topic/fastmon.test.slices.{unique}"],
    )  # fmt: skip
    consumer = start_process(own_settings)
    consumer.wait_for_log(f"subscribed to {requester.control}")
    with override_settings(FASTMON={**settings.FASTMON, **own_settings}):
        own = sorted(own_destinations())
    assert len(own) == 5 and alarms in own

    for destination in own:
        reply, _ = requester.ask({"msg_type": "subscribe", "name": "loop",
                                  "destination": destination})  # fmt: skip
        assert reply["ok"] is False, (destination, reply)
        assert "is one of fastmon's own destinations" in reply["errors"]["destination"]

    good = {"msg_type": "subscribe", "destination": f"/queue/fastmon.test.{unique}"}
    with subscribed(stomp_address, broker_login(), alarms) as (_, on_alarms):
        for name, reply_to in (("a", alarms), ("c", requester.control)):
            headers = {"reply-to": reply_to, "persistent": "true"}
            body = json.dumps({**good, "name": name})
            requester.connection.send(requester.control, body, headers=headers)
        refused = DeadLetter.objects.filter(reason__contains="reply-to: ")
        wait_until(lambda: refused.count() == 2, 15, "two requests refused for their reply-to")
        assert on_alarms.frames_received(0, settle=1.0) == []
    assert all("fastmon's own destinations" in letter.reason for letter in refused)
    # A reply on the control queue would have come back as a request: a dead letter more.
    assert DeadLetter.objects.count() == len(own) + 2
    assert not Subscriber.objects.exists()
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0


def test_filter_lists_and_requests_are_bounded(
    start_process: Callable[..., ServiceProcess], unique_topic: str, requester: Requester
) -> None:
    """The default bounds: 1000 filter values, a 64 KiB request. The request that once made
    routing twice as slow (125,000 run numbers, under the 1 MiB body limit) is refused."""
    consumer = start_process(consumer_settings(unique_topic, CONTROL_DESTINATION=requester.control))
    consumer.wait_for_log(f"subscribed to {requester.control}")
    base = {"msg_type": "subscribe", "destination": "/queue/fastmon.test.bounded"}

    huge = {**base, "name": "huge", "filters": {"run_numbers": list(range(100_000, 225_000))}}
    assert 64 * 1024 < len(json.dumps(huge)) < 1024 * 1024
    reply, _ = requester.ask(huge)
    assert reply["ok"] is False and "over the 65536 limit" in reply["errors"]["body"]

    over = {**base, "name": "over", "filters": {"run_numbers": list(range(1000)),
                                                 "states": ["physics"]}}  # fmt: skip
    reply, _ = requester.ask(over)
    assert reply["ok"] is False
    assert reply["errors"] == {
        "filters": "at most 1000 values in all its lists (SUBSCRIBER_MAX_FILTER_VALUES), not 1001"
    }

    at_most = {**base, "name": "at-most", "filters": {"run_numbers": list(range(1000))}}
    reply, _ = requester.ask(at_most)
    assert reply["ok"] is True and len(reply["subscriber"]["filters"]["run_numbers"]) == 1000
    assert list(Subscriber.objects.values_list("name", flat=True)) == ["at-most"]
    assert DeadLetter.objects.count() == 2
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0
