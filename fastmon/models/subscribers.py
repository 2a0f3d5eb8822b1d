"""Subscribers: who asked for copies of TF samples, where, and which."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


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
