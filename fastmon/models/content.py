"""Content monitoring's tables: each sampled STF's partial histograms until the merger folds
them, and each run's histograms, whole and over the last cycles."""

from __future__ import annotations

from django.db import models


class ContentPartial(models.Model):
    """One STF's histograms, written in the transaction that stores its samples (so a rolled-back
    sample leaves none, and an STF gives at most one), folded into its run's and deleted by the
    merger."""

    run = models.ForeignKey("fastmon.Run", on_delete=models.CASCADE, related_name="+")
    stf = models.OneToOneField("fastmon.StfFile", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    data = models.BinaryField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"content of {self.stf_id}"


class RunContent(models.Model):
    """A run's histograms as of its last merge: the whole run and the moving window."""

    run = models.OneToOneField("fastmon.Run", on_delete=models.CASCADE, related_name="content")
    cycle = models.PositiveIntegerField(default=0)
    merged_at = models.DateTimeField(null=True, blank=True)
    data = models.BinaryField()
    window = models.BinaryField()
    summary = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"content of run {self.run_id}, cycle {self.cycle}"


class ContentCycle(models.Model):
    """What one merge added to a run: the last CONTENT_WINDOW_CYCLES are kept for the window."""

    run = models.ForeignKey("fastmon.Run", on_delete=models.CASCADE, related_name="+")
    cycle = models.PositiveIntegerField()
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "cycle"], name="fastmon_content_cycle_uniq")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} cycle {self.cycle}"


class ContentReference(models.Model):
    """A detector's reference: a copy of one run's histograms of that detector as they were
    when chosen (the run's later cycles do not move it), which content checks compare with.
    One per detector: choosing another replaces it."""

    detector = models.CharField(max_length=100, unique=True)
    run = models.ForeignKey("fastmon.Run", on_delete=models.CASCADE, related_name="+")
    chosen_at = models.DateTimeField()
    chosen_by = models.CharField(max_length=150, blank=True, default="")
    data = models.BinaryField()  # Content.dumps() of the detector's histograms

    class Meta:
        ordering = ["detector"]

    def __str__(self) -> str:
        return f"{self.detector} reference: run {self.run_id}"
