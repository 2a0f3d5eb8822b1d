"""The embedded-default site: fastmon on SQLite with no external services."""

import os
import sys
from typing import TextIO

from demo.celery import app as celery_app

__all__ = ["PREFIX", "celery_app", "say"]

# How every line the demo prints starts.
PREFIX = "fastmon demo:"


def say(text: str, end: str = "\n", stream: TextIO | None = None) -> None:
    """Print, where a closed pipe (``python -m demo | tee log``, tee killed) only silences the
    demo: raised in the middle of a stop, it would leave the consumer's thread running and the
    demo deaf to Ctrl-C and SIGTERM."""
    stream = stream or sys.stdout
    try:
        print(text, end=end, file=stream, flush=True)
    except BrokenPipeError:  # from now on, its lines go nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
