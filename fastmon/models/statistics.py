"""Per-run counters of TF samples, kept as samples are written, so that a run's statistics
read a few dozen rows instead of scanning its hundreds of thousands of samples."""

from __future__ import annotations

from django.db import models


class RunCounter(models.Model):
    """One named count of a run (``fastmon.statistics.counters`` names them and keeps them)."""

    run = models.ForeignKey("fastmon.Run", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="fastmon_counter_run_name_uniq")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.name} = {self.value}"
