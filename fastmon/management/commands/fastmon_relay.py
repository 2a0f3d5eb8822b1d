from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from fastmon.runtime.console import log_to_console
from fastmon.runtime.consumer import Consumer


class Command(BaseCommand):
    help = (
        "Publish the outbox on its own (run_fastmon also does it unless --no-relay): pending "
        "messages go out in order and wait while the broker is away. Stops on SIGTERM, SIGINT "
        "and SIGQUIT."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        log_to_console(options["verbosity"])
        sys.exit(Consumer(relay=True, destinations=[]).run_until_signalled())
