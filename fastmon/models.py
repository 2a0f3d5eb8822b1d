"""fastmon's data: runs, STF files, TF samples, dead letters and subscribers.

Natural keys (run number, STF file name, TF file name) are unique, so redelivered messages
update rows instead of duplicating them. Every table is ``fastmon_*``.
"""

from __future__ import annotations

import base64
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from fastmon.sampling.policy import Policy


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
    run_conditions = models.JSONField(default=dict, blank=True)
    imminent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    total_stf_files = models.PositiveIntegerField(
        null=True, blank=True, help_text="STF total announced by end_run."
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
        StfFile, on_delete=models.CASCADE, related_name="tf_samples", db_index=False
    )
    # The STF's run, kept here too: samples are read by run, newest first, and partitioned by
    # run when the table outgrows one index.
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
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


class DeadLetter(models.Model):
    """A message fastmon could not use, kept whole with the reason, to browse or replay."""

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

    def policy(self) -> Policy:
        return Policy.from_params(self.params)

    def clean(self) -> None:
        try:
            self.policy()
        except (TypeError, ValueError) as exc:
            raise ValidationError({"params": str(exc)}) from exc


class LiveEvent(models.Model):
    """Something the live pages show, numbered in order (``id`` is the sequence number), kept
    so that a client that reconnects can ask for what it missed."""

    class Kind(models.TextChoices):
        RUN = "run"
        STF = "stf"
        TF_SAMPLES = "tf_samples", "TF samples of one STF registered"
        DEAD_LETTER = "dead_letter"
        ALARM = "alarm"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    run_number = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run_number", "id"], name="fastmon_event_run_idx")]

    def __str__(self) -> str:
        return f"event {self.pk} ({self.kind})"


class ConsumerStatus(models.Model):
    """A run_fastmon's own report of how it is, refreshed every CONSUMER_STATUS_INTERVAL_S, so
    health checks in other processes (web, ``fastmon_health``) can see it; removed on a clean
    stop, so a row that stops moving means a consumer that died."""

    agent_name = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    broker_connected = models.BooleanField()
    last_message_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.agent_name} ({'connected' if self.broker_connected else 'disconnected'})"
