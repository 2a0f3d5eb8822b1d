"""What comes in unusable (dead letters) and what goes out (subscribers, the outbox)."""

from __future__ import annotations

import base64

from django.db import models
from django.db.models import Q
from django.utils import timezone


class DeadLetter(models.Model):
    """A message fastmon could not use, kept with the reason (whole unless it is huge), to browse
    or replay."""

    class Reason(models.TextChoices):
        TOO_LARGE = "too_large", "body over the size limit"
        NOT_JSON = "not_json", "body is not JSON"
        NOT_OBJECT = "not_object", "JSON is not an object"
        NO_MSG_TYPE = "no_msg_type", "no msg_type"
        INVALID = "invalid", "missing or mistyped fields"
        NO_FILENAME = "no_filename", "STF announcement without a filename"
        REJECTED = "rejected", "refused by the database"
        INTERNAL = "internal", "fastmon failed on it (see the log)"

    class Status(models.TextChoices):
        PENDING = "pending"
        REPLAYED = "replayed"
        DISCARDED = "discarded"

    class Encoding(models.TextChoices):
        UTF8 = "utf-8"
        BASE64 = "base64", "base64 (body was not text PostgreSQL can store)"

    body = models.TextField(blank=True, default="")
    body_encoding = models.CharField(max_length=10, choices=Encoding.choices, default="utf-8")
    body_size = models.PositiveBigIntegerField(help_text="Size of the raw body in bytes.")
    body_sha256 = models.CharField(max_length=64, help_text="Identifies repeats of one body.")
    body_truncated = models.BooleanField(
        default=False, help_text="Only the start of the body was kept; it cannot be replayed."
    )
    headers = models.JSONField(default=dict, blank=True)
    destination = models.CharField(max_length=255, blank=True, default="")
    msg_type = models.CharField(max_length=100, blank=True, default="")
    reason_code = models.CharField(max_length=20, choices=Reason.choices)
    reason = models.TextField(help_text="What was wrong, in words.")
    received_at = models.DateTimeField(auto_now_add=True)
    occurrences = models.PositiveIntegerField(
        default=1, help_text="Times this body arrived while pending (redeliveries, floods)."
    )
    last_received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["status", "-received_at"], name="fastmon_dl_status_idx"),
            models.Index(fields=["reason_code", "-received_at"], name="fastmon_dl_reason_idx"),
            models.Index(fields=["body_sha256", "status"], name="fastmon_dl_sha_idx"),
        ]

    def __str__(self) -> str:
        return f"dead letter {self.pk} ({self.reason_code})"

    def raw_body(self) -> bytes:
        """The body exactly as it arrived, for replay."""
        if self.body_encoding == self.Encoding.BASE64:
            return base64.b64decode(self.body)
        return self.body.encode("utf-8")


class Subscriber(models.Model):
    """A consumer of TF metadata that asked for a share of the stream (``fastmon.subscribers.rules``
    holds the rules). A lease: one whose ``expires_at`` passes without a renewed ``subscribe``
    is set inactive."""

    name = models.CharField(max_length=150, unique=True)
    destination = models.CharField(max_length=255, help_text="/queue/... or /topic/...")
    filters = models.JSONField(default=dict, blank=True)
    fraction = models.FloatField(default=1.0, help_text="Share of TF samples delivered, 0..1.")
    active = models.BooleanField(default=True)
    idle_expiry_s = models.FloatField(
        null=True, blank=True, help_text="Seconds without a renewal before it lapses; empty: never."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    delivered_count = models.PositiveBigIntegerField(default=0)
    dropped_count = models.PositiveBigIntegerField(
        default=0, help_text="Messages given up after their destination kept failing."
    )
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["active"], name="fastmon_sub_active_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(fraction__gte=0) & Q(fraction__lte=1),
                name="fastmon_sub_fraction_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name


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
        Subscriber, on_delete=models.SET_NULL, null=True, blank=True, related_name="outbox"
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
