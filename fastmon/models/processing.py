"""The fast-processing stage, observed: each TF slice the fast-processing agent cuts from a TF
sample, from its ``slice`` message to its worker's ``slice_result``."""

from __future__ import annotations

from django.db import models


class Slice(models.Model):
    """One TF slice, by its file name (natural key). Messages may arrive late, twice or out of
    order: a result before its slice message is kept, a redelivery changes nothing, and a done
    slice is never set back."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"

    tf_filename = models.CharField(max_length=255, unique=True, help_text="The slice's file.")
    sample = models.ForeignKey(
        "fastmon.TfSample", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="slices", help_text="The TF sample it was cut from, when fastmon made it.",
    )  # fmt: skip
    run = models.ForeignKey(
        "fastmon.Run", null=True, blank=True, on_delete=models.PROTECT, related_name="slices",
        db_index=False,
    )  # fmt: skip
    slice_id = models.PositiveIntegerField(null=True, blank=True)
    tf_first = models.PositiveIntegerField(null=True, blank=True)
    tf_last = models.PositiveIntegerField(null=True, blank=True)
    tf_count = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    retries = models.PositiveIntegerField(default=0, help_text="Times it was queued again.")
    req_id = models.CharField(max_length=100, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    queued_at = models.DateTimeField(null=True, blank=True, help_text="Its slice message.")
    completed_at = models.DateTimeField(null=True, blank=True, help_text="Its worker's result.")
    processing_seconds = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="The worker's metrics.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["run", "status"], name="fastmon_slice_run_status_idx")]

    def __str__(self) -> str:
        return self.tf_filename
