"""TF samples, and the sampling policies that chose them (the ledger)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q


class TfSample(models.Model):
    """A sampled range of Time Frames of one STF (swf-monitor's FastMonFile)."""

    class Status(models.TextChoices):
        REGISTERED = "registered"
        PROCESSING = "processing"
        PROCESSED = "processed"
        DONE = "done"
        FAILED = "failed"

    tf_file_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tf_filename = models.CharField(max_length=255, unique=True)
    # Indexed through (stf, tf_first) below.
    stf = models.ForeignKey(
        "fastmon.StfFile", on_delete=models.CASCADE, related_name="tf_samples", db_index=False
    )
    # The STF's run, kept here too: samples are read by run, newest first, and partitioned by
    # run when the table outgrows one index.
    run = models.ForeignKey(
        "fastmon.Run",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    tf_first = models.PositiveIntegerField()
    tf_last = models.PositiveIntegerField()
    tf_count = models.PositiveIntegerField()
    file_size_bytes = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REGISTERED)
    metadata = models.JSONField(default=dict, blank=True)
    # The ledger: which policy version and seed chose this range (re-derivable from them).
    policy = models.ForeignKey(
        "SamplingPolicy", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    seed = models.BigIntegerField(null=True, blank=True)

    class Boundaries(models.TextChoices):
        ANNOUNCED = "announced", "the announcement's tf_offsets"
        INDEX = "index", "the file's own index"
        EQUAL = "equal", "an equal share of the file per TF"

    # Where the sampled TFs' byte ranges came from.
    tf_boundaries = models.CharField(
        max_length=10, choices=Boundaries.choices, default=Boundaries.EQUAL
    )
    policy_overrides = models.JSONField(
        default=dict, blank=True, help_text="Policy parameters the run's workflow set."
    )
    size_estimated = models.BooleanField(
        default=False, help_text="The STF file was not reachable: size estimated, not measured."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="Sampled (registered).")
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(
        null=True, blank=True, help_text="Its tf_file_registered left for the broker."
    )

    class InMonitor(models.TextChoices):
        """Its registration in swf-monitor's fastmon-files (SWF_MONITOR_FEED)."""

        NONE = "", "not fed"
        PENDING = "pending", "to be registered"
        WAITING = "waiting", "swf-monitor does not know its STF yet: retried"
        REGISTERED = "registered", "registered"
        REFUSED = "refused", "refused by swf-monitor"

    monitor_state = models.CharField(
        max_length=20, choices=InMonitor.choices, blank=True, default=InMonitor.NONE
    )
    monitor_file_id = models.UUIDField(
        null=True, blank=True, help_text="swf-monitor's tf_file_id, once it stored the sample."
    )
    monitor_checked_at = models.DateTimeField(
        null=True, blank=True, help_text="Its status last compared with swf-monitor's."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["stf", "tf_first"], name="fastmon_tf_stf_first_idx"),
            models.Index(fields=["run", "-created_at"], name="fastmon_tf_run_created_idx"),
            models.Index(fields=["status", "-created_at"], name="fastmon_tf_status_idx"),
            models.Index(fields=["-created_at"], name="fastmon_tf_created_idx"),
        ]
        constraints = [
            # The spec's range rules; tf_last < the STF's tf_count spans two tables and is
            # checked by the service that records samples.
            models.CheckConstraint(
                condition=Q(tf_first__lte=F("tf_last")), name="fastmon_tf_first_le_last"
            ),
            models.CheckConstraint(
                condition=Q(tf_count=F("tf_last") - F("tf_first") + 1),
                name="fastmon_tf_count_matches_range",
            ),
            models.CheckConstraint(
                condition=Q(file_size_bytes__isnull=True) | Q(file_size_bytes__gte=0),
                name="fastmon_tf_size_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return self.tf_filename


class SamplingPolicy(models.Model):
    """A named, versioned sampling policy. Versions are never changed: an edit saves a new one,
    so every TF sample can point at exactly the parameters that chose it."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1, editable=False)
    description = models.TextField(blank=True, default="")
    params = models.JSONField(
        default=dict, blank=True, help_text="fastmon.sampling.Policy fields; missing ones default."
    )
    namespace = models.CharField(max_length=100, blank=True, default="", help_text="Blank: any.")
    run_type = models.CharField(max_length=100, blank=True, default="", help_text="Blank: any.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["name", "-version"]
        verbose_name_plural = "sampling policies"
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="fastmon_policy_version_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"
