"""Reads for pages, the API and commands: the queries live here, not in views."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from fastmon.models import DeadLetter, Run, StfFile


def runs_with_counts() -> QuerySet[Run]:
    """Runs, newest first, with how many STFs were announced and sampled, in one query."""
    return Run.objects.annotate(
        stf_announced=Count("stf_files"),
        stf_sampled=Count("stf_files", filter=Q(stf_files__status=StfFile.Status.SAMPLED)),
    ).order_by("-run_number")


def pending_dead_letters() -> QuerySet[DeadLetter]:
    return DeadLetter.objects.filter(status=DeadLetter.Status.PENDING).order_by("-received_at")
