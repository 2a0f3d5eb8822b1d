"""The outbox: every message to send, written in the transaction of the data it describes."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class OutboxQuerySet(models.QuerySet):
    def pending(self, transport: str) -> OutboxQuerySet:
        """Neither sent nor given up: what a relay still owes (the pending index's rows)."""
        return self.filter(transport=transport, sent_at__isnull=True, failed_at__isnull=True)

    def releasable(self, transport: str) -> OutboxQuerySet:
        """Pending and not held: what a relay may send now."""
        return self.pending(transport).filter(held=False)

    def undelivered(self, subscriber_id: int) -> OutboxQuerySet:
        """A subscriber's copies neither delivered nor given up."""
        return self.pending(OutboxMessage.Transport.BROKER).filter(subscriber_id=subscriber_id)


class OutboxMessage(models.Model):
    """A message to publish, written in the same transaction as the data it describes.

    Relays send pending rows in ``id`` order per destination and stamp ``sent_at``; a
    rolled-back transaction leaves no row, so nothing is ever published for data that was not
    stored. A destination that fails waits until ``next_attempt_at`` without holding up the
    others; a row given up (a subscriber's destination failing for good, a rejection by
    swf-monitor) gets ``failed_at`` and its reason in ``last_error``.
    """

    class Transport(models.TextChoices):
        BROKER = "broker", "STOMP broker"
        SWF_MONITOR = "swf_monitor", "swf-monitor REST API"

    transport = models.CharField(max_length=20, choices=Transport.choices, default=Transport.BROKER)
    destination = models.CharField(max_length=255)
    subscriber = models.ForeignKey(
        "fastmon.Subscriber",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="outbox",
    )
    msg_type = models.CharField(max_length=100, blank=True, default="")
    subject = models.CharField(
        max_length=255, blank=True, default="", help_text="Natural key of what it describes."
    )
    body = models.TextField()
    headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # Held until swf-monitor has stored its sample (subject): the fast-processing agent looks
    # the sample up there when this arrives.
    held = models.BooleanField(default=False)

    objects = OutboxQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["transport", "id"],
                condition=Q(sent_at__isnull=True, failed_at__isnull=True),
                name="fastmon_outbox_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"outbox {self.pk} to {self.destination}"
