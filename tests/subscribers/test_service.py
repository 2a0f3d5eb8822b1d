"""Subscribers stored: routed delivery through the outbox (against the real ActiveMQ), a failing
destination that holds up nobody and is dropped in the end, leases that lapse and revive, and a
renewal that takes the backlog along."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import OutboxMessage, StfFile, Subscriber
from fastmon.outbox.relay import relay_outbox
from fastmon.sampling.policy import TfRange
from fastmon.sampling.samples import SamplePlan, record_tf_samples
from fastmon.subscribers.rules import parse_subscription
from fastmon.subscribers.service import save_subscriber
from fastmon.testing.announcing import announce
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import example
from fastmon.transport.stomp import StompTransport

pytestmark = pytest.mark.django_db(transaction=True)

RANGES = [TfRange(10 * n, 10 * n + 4, file_size_bytes=5000) for n in range(7)]


@pytest.fixture
def stfs() -> list[StfFile]:
    ingest_message(json.dumps(example("run_imminent", run_id=7001)))
    announce("stf_gen", 7001, 1, 2, 3)
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


def test_subscribers_stored_before_the_rules_are_set_inactive_not_routed(
    stfs: list[StfFile],
) -> None:
    """Rows written before these rules (or before a setting named their destination): on the
    alarm topic, or with 125,000 run numbers. Routing sets them inactive and says why."""
    alarms = settings.FASTMON.get("ALARM_DESTINATION", "/topic/fastmon.alarms")
    on_alarms = Subscriber.objects.create(name="alarms", destination=alarms)
    backlog = OutboxMessage.objects.create(destination=alarms, msg_type="tf_file_registered",
                                           body="{}", subscriber=on_alarms)  # fmt: skip
    Subscriber.objects.create(name="huge", destination="/queue/fastmon.test.huge",
                              filters={"run_numbers": list(range(125_000))})  # fmt: skip
    fine = subscribe("fine", "/queue/fastmon.test.fine")

    record_tf_samples([SamplePlan(stfs[0], RANGES[:2])])
    copies = OutboxMessage.objects.filter(subscriber__isnull=False).exclude(pk=backlog.pk)
    assert list(copies.values_list("subscriber", flat=True)) == [fine.pk] * 2
    assert list(OutboxMessage.objects.filter(destination=alarms)) == [backlog]
    backlog.refresh_from_db()
    assert backlog.failed_at and backlog.sent_at is None  # given up, not sent
    refused = dict(Subscriber.objects.filter(active=False).values_list("name", "last_error"))
    assert refused.keys() == {"alarms", "huge"}
    assert "refused by the rules: " in refused["alarms"]
    assert "is one of fastmon's own destinations" in refused["alarms"]
    assert "filters: at most 1000 values in all its lists" in refused["huge"]
    assert Subscriber.objects.get(name="alarms").dropped_count == 1
