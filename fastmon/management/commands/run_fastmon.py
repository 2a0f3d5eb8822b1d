from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from fastmon.conf import fastmon_settings
from fastmon.runtime.console import log_to_console
from fastmon.runtime.consumer import Consumer


class Command(BaseCommand):
    help = (
        "Consume STF announcements from the broker, store them in batches (ack after commit) "
        "and relay the outbox; with --watch (or WATCH_DIRS), also ingest the STF files appearing "
        "in DAQ exit buffers as stf_ready notices. Stops cleanly on SIGTERM, SIGINT and SIGQUIT. "
        "Exit codes: "
        "0 stopped, 2 configuration (a watched directory missing too), 3 login refused, "
        "4 broker unreachable, 5 database unreachable, 6 broker refused a subscription or the "
        "connection (AGENT_NAME in use)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--no-relay", action="store_true", help="leave the outbox to `fastmon_relay`"
        )
        parser.add_argument(
            "--watch", action="append", default=[], metavar="DIR",
            help="watch DIR for complete *.stf files, besides the broker (repeatable; "
            "replaces FASTMON['WATCH_DIRS'])",
        )  # fmt: skip

    def handle(self, *args: Any, no_relay: bool, watch: list[str], **options: Any) -> None:
        log_to_console(options["verbosity"])
        consumer = Consumer(relay=not no_relay)
        directories = watch or fastmon_settings.WATCH_DIRS
        if not directories:
            sys.exit(consumer.run_until_signalled())
        from fastmon.runtime.watch import run_watching  # watchdog: the ``watch`` extra

        sys.exit(run_watching(consumer, directories))
