"""``python -m demo``: migrate a local SQLite database, ingest the testbed's example messages,
and print what fastmon stored."""

import os
import sys

import django
from django.core.management import call_command


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    django.setup()
    from fastmon.testing.messages import EXAMPLES_DIR, RUN_ORDER

    call_command("migrate", verbosity=0)
    files = [str(EXAMPLES_DIR / f"{name}.json") for name in RUN_ORDER]
    call_command("fastmon_ingest", *files, stdout=sys.stdout)
    call_command("fastmon_summary", stdout=sys.stdout)


if __name__ == "__main__":
    main()
