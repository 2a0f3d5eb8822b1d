from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from fastmon.tail import cli
from fastmon.tail.follow import follow


class Command(BaseCommand):
    help = (
        "Follow fastmon's live events: per run, STFs, TF samples, data volume and rates, redrawn "
        "in place on a terminal (periodic lines otherwise); --json prints one event per line. "
        "From the database, or with --url from a served site (its API and websocket). Resumes "
        "after --since SEQUENCE. Ctrl-C or SIGTERM stops it (exit 0)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        cli.run(options, self.stdout, self.stderr, database=follow)
