"""Dead letters: inputs fastmon could not use, kept with their reason."""

from __future__ import annotations

import base64

from django.db import models
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
