from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, cast

from django.core.management.base import BaseCommand
from django.db.models import Count, Prefetch, QuerySet

from fastmon.models import StfFile
from fastmon.overview import pending_dead_letters, runs_with_counts

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _SampleCount(TypedDict):
    samples: int


class Command(BaseCommand):
    help = "Print what fastmon has stored: runs, their STFs, and pending dead letters."

    def handle(self, *args: Any, **options: Any) -> None:
        write = self.stdout.write
        stfs_in_order = Prefetch(
            "stf_files",
            queryset=StfFile.objects.order_by("sequence").annotate(samples=Count("tf_samples")),
        )
        for run in runs_with_counts().prefetch_related(stfs_in_order):
            write(
                f"run {run.run_number}: {run.state or '-'}/{run.substate or '-'}, "
                f"{run.stf_announced} STFs ({run.stf_sampled} sampled), "
                f"end_run total {run.total_stf_files if run.total_stf_files is not None else '-'}"
            )
            # Annotated by the Prefetch's queryset, which django-stubs do not follow.
            stfs = cast("QuerySet[WithAnnotations[StfFile, _SampleCount]]", run.stf_files.all())
            for stf in stfs:
                write(
                    f"  {stf.stf_filename}  seq {stf.sequence}  {stf.status}  "
                    f"size {stf.size_bytes if stf.size_bytes is not None else '-'}  "
                    f"checksum {stf.checksum or '-'}  TF samples {stf.samples}"
                )
        letters = pending_dead_letters()
        write(f"dead letters pending: {letters.count()}")
        for letter in letters[:20]:
            write(f"  #{letter.pk} {letter.reason_code}: {letter.reason}")
