"""Runs and their STF files, by natural key (run number, STF file name)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Run(models.Model):
    """A data-taking run, built from the workflow runner's lifecycle messages."""

    run_number = models.BigIntegerField(unique=True)
    namespace = models.CharField(max_length=100, blank=True, default="")
    execution_id = models.CharField(max_length=200, blank=True, default="")
    state = models.CharField(max_length=100, blank=True, default="", help_text="DAQ state")
    substate = models.CharField(max_length=100, blank=True, default="", help_text="DAQ substate")
    state_changed_at = models.DateTimeField(
        null=True, blank=True, help_text="Timestamp of the message that set state/substate."
    )
    state_seen_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When fastmon took the state change, by its own clock (the DAQ's may differ).",
    )  # fmt: skip
    run_conditions = models.JSONField(default=dict, blank=True)
    imminent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    total_stf_files = models.PositiveIntegerField(
        null=True, blank=True, help_text="STF total announced by end_run."
    )
    fast_processing = models.JSONField(
        default=dict, blank=True,
        help_text="The workflow's fast_processing parameters for this run, as the agents use them.",
    )  # fmt: skip
    parameters_checked_at = models.DateTimeField(
        null=True, blank=True, help_text="swf-monitor asked for its workflow's parameters."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-run_number"]
        indexes = [models.Index(fields=["state", "substate"], name="fastmon_run_state_idx")]

    def __str__(self) -> str:
        return f"run {self.run_number}"


class StfFile(models.Model):
    """A Super Time Frame file, announced by ``stf_gen`` and enriched by ``stf_ready``."""

    class Status(models.TextChoices):
        ANNOUNCED = "announced", "announced (stf_gen)"
        READY = "ready", "ready (stf_ready)"
        SAMPLED = "sampled", "TF samples registered"
        SKIPPED = "skipped", "not chosen by the sampling policy"
        FAILED = "failed", "sampling gave up"

    stf_filename = models.CharField(max_length=255, unique=True)
    # Indexed through (run, sequence) below; a second index on run alone would only slow inserts.
    run = models.ForeignKey(
        Run,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stf_files",
        db_index=False,
    )
    sequence = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=100, blank=True, default="")
    file_url = models.TextField(blank=True, default="")
    tf_count = models.PositiveIntegerField(null=True, blank=True, help_text="TFs in the STF.")
    state = models.CharField(max_length=100, blank=True, default="")
    substate = models.CharField(max_length=100, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True, help_text="DAQ start of the STF.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="DAQ end of the STF.")
    updated_at = models.DateTimeField(auto_now=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ANNOUNCED)
    # Latency stamps, stage by stage: DAQ end of STF (ended_at), the broker's timestamp of the
    # first announcement, fastmon receiving and committing it, and sampling it.
    broker_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, help_text="First announcement seen.")
    committed_at = models.DateTimeField(null=True, blank=True)
    sampled_at = models.DateTimeField(null=True, blank=True)
    # What reading its sampled ranges took, where it lives: bytes read against the file's size
    # is the proof of a partial read.
    bytes_read = models.BigIntegerField(null=True, blank=True)
    file_bytes = models.BigIntegerField(null=True, blank=True, help_text="Its size, as read.")
    read_protocol = models.CharField(max_length=10, blank=True, default="")
    read_seconds = models.FloatField(null=True, blank=True)
    sampling_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Sampling runs started; past the limit the STF is marked failed."
    )
    metadata = models.JSONField(
        default=dict, blank=True, help_text="Other announcement fields, per message type."
    )

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["run", "sequence"], name="fastmon_stf_run_seq_idx"),
            models.Index(fields=["status", "-received_at"], name="fastmon_stf_status_idx"),
            models.Index(fields=["-received_at"], name="fastmon_stf_received_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(size_bytes__isnull=True) | Q(size_bytes__gte=0),
                name="fastmon_stf_size_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return self.stf_filename
