"""Live events: what pages and followers are sent, stored and numbered in commit order."""

from __future__ import annotations

from django.db import models


class LiveEvent(models.Model):
    """Something the live pages show, numbered in order (``id`` is the sequence number), kept
    so that a client that reconnects can ask for what it missed."""

    class Kind(models.TextChoices):
        RUN = "run"
        STF = "stf"
        TF_SAMPLES = "tf_samples", "TF samples of one STF registered"
        DEAD_LETTER = "dead_letter"
        ALARM = "alarm"
        PROCESSING = "processing", "fast processing of a run moved on"
        QUALITY = "quality", "a run's quality changed"
        CONTENT = "content", "a run's histograms were merged"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    run_number = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run_number", "id"], name="fastmon_event_run_idx")]

    def __str__(self) -> str:
        return f"event {self.pk} ({self.kind})"
