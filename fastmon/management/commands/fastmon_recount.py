from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fastmon.models import Run
from fastmon.statistics.counters import recount


class Command(BaseCommand):
    help = (
        "Count runs' TF samples again and replace their statistics counters (after data was "
        "changed outside fastmon, e.g. by hand in SQL). Writers of samples wait meanwhile."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("runs", nargs="*", type=int, help="run numbers (default: all runs)")

    def handle(self, *args: Any, runs: list[int], **options: Any) -> None:
        ids = None
        if runs:
            found = dict(Run.objects.filter(run_number__in=runs).values_list("run_number", "pk"))
            if missing := sorted(set(runs) - set(found)):
                raise CommandError(f"no such run: {', '.join(map(str, missing))}")
            ids = list(found.values())
        begin = time.perf_counter()
        written = recount(ids)
        self.stdout.write(
            f"{written} counters written for {len(runs) or 'all'} runs "
            f"in {time.perf_counter() - begin:.1f} s"
        )
