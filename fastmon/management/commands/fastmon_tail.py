from __future__ import annotations

import os
import signal
import sys
import threading
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand

from fastmon.tail.follow import Frame, JsonView, TableView, follow
from fastmon.tail.tally import WINDOW_S, Tally


class Command(BaseCommand):
    help = (
        "Follow fastmon's live events: per run, STFs, TF samples, data volume and rates, redrawn "
        "in place on a terminal (periodic lines otherwise); --json prints one event per line. "
        "Resumes after --since SEQUENCE. Ctrl-C or SIGTERM stops it (exit 0)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--since", type=_count, metavar="SEQUENCE",
            help="start after this sequence number (0 replays everything; default: the newest, "
            "so only what comes next)",
        )  # fmt: skip
        parser.add_argument("--run", type=int, dest="run_number", help="only this run's events")
        parser.add_argument(
            "--kinds", type=_kinds, metavar="KIND,...",
            help="only these kinds (run, stf, tf_samples, dead_letter, alarm, ...)",
        )  # fmt: skip
        parser.add_argument(
            "--json", action="store_true", dest="as_json",
            help="print each event as one JSON object per line (the API's /events shape)",
        )  # fmt: skip
        parser.add_argument(
            "--once", "--until-idle", action="store_true",
            help="exit once the events there now are printed",
        )  # fmt: skip
        parser.add_argument(
            "--interval", type=_seconds, default=0.5, help="seconds between polls (0.5)"
        )
        parser.add_argument(
            "--window", type=_seconds, default=WINDOW_S,
            help=f"rates are over the last this many seconds ({WINDOW_S:g})",
        )  # fmt: skip
        parser.add_argument(
            "--refresh", type=_seconds,
            help="seconds between table updates (1 on a terminal, 10 as plain lines)",
        )  # fmt: skip

    def handle(
        self, *args: Any, since: int | None, run_number: int | None, kinds: set[str] | None,
        as_json: bool, once: bool, interval: float, window: float, refresh: float | None,
        **options: Any,
    ) -> None:  # fmt: skip
        if as_json:
            view: JsonView | TableView = JsonView(self.stdout, self.stderr)
        else:
            view = TableView(self.stdout, self.stderr, Tally(window), refresh)
        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGINT, signal.SIGTERM)
        }

        def wanted(frame: Frame) -> bool:
            return (run_number is None or frame["run_number"] == run_number) and (
                kinds is None or frame["kind"] in kinds
            )

        try:
            follow(since, wanted, view, once, interval, stop)
        except BrokenPipeError:
            # The reader went away (`| head`): nothing more to say, and nothing to flush at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ArgumentTypeError("must be 0 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ArgumentTypeError("must be more than 0 seconds")
    return value


def _kinds(text: str) -> set[str]:
    kinds = {kind.strip() for kind in text.split(",") if kind.strip()}
    if not kinds:
        raise ArgumentTypeError("give at least one kind")
    return kinds
