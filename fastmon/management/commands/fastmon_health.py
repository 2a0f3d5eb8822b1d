from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand

from fastmon.health import readiness


class Command(BaseCommand):
    help = "Print fastmon's readiness checks as JSON; exit 1 when any fails (for cron, probes)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = readiness()
        self.stdout.write(json.dumps(report, indent=2))
        if report["status"] != "ok":
            sys.exit(1)
