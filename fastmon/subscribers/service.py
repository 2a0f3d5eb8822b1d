"""Subscribers stored: registered, renewed, expired, removed; and set inactive when their
destination keeps refusing (their undelivered copies given up), or when the rules no longer
allow what they were stored with."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from fastmon.models import OutboxMessage, Subscriber
from fastmon.outbox.relay import drop_subscriber_backlog
from fastmon.subscribers.rules import Subscription, own_destinations, stored_problem

logger = logging.getLogger("fastmon.outbox")


def routable_subscribers() -> list[Subscriber]:
    """Subscribers that take new messages. Those whose lease ran out are set inactive first, and
    so are those the rules now refuse (stored before them, or before a setting named their
    destination), their undelivered copies given up."""
    expire_subscribers()
    routable = []
    own = own_destinations()  # once, not per subscriber: read at every chunk sampled
    for subscriber in Subscriber.objects.filter(active=True):
        if problem := stored_problem(subscriber.destination, subscriber.filters, own):
            drop_subscriber_backlog(subscriber.pk, f"refused by the rules: {problem}")
        else:
            routable.append(subscriber)
    return routable


def expire_subscribers() -> int:
    """Set inactive the subscribers whose lease ran out; return how many."""
    return Subscriber.objects.filter(active=True, expires_at__lte=timezone.now()).update(
        active=False, last_error="lease expired: no subscribe request renewed it"
    )


def save_subscriber(
    subscription: Subscription, by: str, subscriber_id: int | None = None
) -> Subscriber:
    """Register (or replace, by name or by id) a subscriber and renew its lease."""
    lease = subscription.lease_seconds()
    values = {
        "name": subscription.name,
        "destination": subscription.destination,
        "filters": subscription.stored_filters(),
        "fraction": subscription.fraction,
        "active": subscription.active,
        "idle_expiry_s": lease,
        "expires_at": timezone.now() + timedelta(seconds=lease) if lease else None,
        "last_error": "",
        "updated_by": by,
    }
    lookup = {"pk": subscriber_id} if subscriber_id else {"name": subscription.name}
    subscriber, _ = Subscriber.objects.update_or_create(
        **lookup, defaults=values, create_defaults={**values, "created_by": by}
    )
    # What is still undelivered goes where the subscriber now says, tried again at once: a
    # renewal says it is there.
    OutboxMessage.objects.undelivered(subscriber.pk).update(
        destination=subscriber.destination, attempts=0, next_attempt_at=None
    )
    return subscriber


def remove_subscriber(name: str) -> bool:
    """Remove a subscriber and its undelivered messages; what it was sent stays, unlinked.
    False if there was none."""
    subscriber = Subscriber.objects.filter(name=name).first()
    if subscriber is None:
        return False
    OutboxMessage.objects.undelivered(subscriber.pk).delete()
    subscriber.delete()
    return True
