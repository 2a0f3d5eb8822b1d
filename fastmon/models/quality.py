"""Data quality: each check's memory of a run and its verdict now, the flags it gave over time
(ALICE's Run Condition Table: quality over time ranges), and the alarms raised."""

from __future__ import annotations

from enum import StrEnum

from django.db import models
from django.db.models import Q


class Quality(StrEnum):
    """Qualities, as ALICE QC's checks return them: good, medium, bad, or null (no opinion,
    shown as Unknown). Stored in every quality column; ``fastmon.quality.verdicts`` judges
    with them."""

    GOOD = "good"
    MEDIUM = "medium"
    BAD = "bad"
    NULL = "null"

    @property
    def severity(self) -> int:
        """Null < good < medium < bad: the worst of several is the one with the highest."""
        return _SEVERITY[self]


_SEVERITY = {Quality.NULL: 0, Quality.GOOD: 1, Quality.MEDIUM: 2, Quality.BAD: 3}

QUALITIES = [(q.value, q.value) for q in Quality]


class CheckState(models.Model):
    """What a check keeps of one run between evaluations (its memory, so a new batch costs
    what it adds, not a rescan), and its current verdict."""

    run = models.ForeignKey("fastmon.Run", on_delete=models.CASCADE, related_name="+")
    check_name = models.CharField(max_length=100)  # "check" is a Model method
    memory = models.JSONField(default=dict, blank=True)
    quality = models.CharField(max_length=10, choices=QUALITIES, default=Quality.NULL)
    reason = models.TextField(blank=True, default="")
    since = models.DateTimeField(null=True, blank=True, help_text="Its quality since.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "check_name"], name="fastmon_check_run_uniq")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.check_name}: {self.quality}"


class QualityFlag(models.Model):
    """A check's quality of a run over a time range; ``end`` is null while it holds."""

    run = models.ForeignKey("fastmon.Run", on_delete=models.CASCADE, related_name="+")
    check_name = models.CharField(max_length=100)  # "check" is a Model method
    quality = models.CharField(max_length=10, choices=QUALITIES)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["run", "start"], name="fastmon_flag_run_start_idx")]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.check_name} {self.quality} from {self.start}"


class Alarm(models.Model):
    """Raised when a check turned bad (ALARM_LEVEL), cleared when it recovered: at most one
    open per run and check. It is shown until a person acknowledges it, cleared or not: a
    verdict raised and cleared at once (a run's end) would otherwise go unseen."""

    run = models.ForeignKey("fastmon.Run", on_delete=models.CASCADE, related_name="+")
    check_name = models.CharField(max_length=100)  # "check" is a Model method
    quality = models.CharField(max_length=10, choices=QUALITIES)
    reason = models.TextField(blank=True, default="")
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    clear_reason = models.TextField(blank=True, default="")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    # db_default: a run_fastmon not yet upgraded still inserts alarms into the migrated table.
    acknowledged_by = models.CharField(max_length=150, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["-raised_at"], name="fastmon_alarm_raised_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "check_name"],
                condition=Q(cleared_at=None),
                name="fastmon_alarm_open_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"alarm {self.pk}: run {self.run_id} {self.check_name} {self.quality}"

    @property
    def state(self) -> str:
        """As a control room shows it: open, cleared but not yet seen by a person, or seen."""
        if self.acknowledged_at is not None:
            return "acknowledged"
        return "active" if self.cleared_at is None else "cleared, unacknowledged"
