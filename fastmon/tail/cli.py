"""``fastmon_tail``'s options and its run, shared by the management command (the database, or a
served site with ``--url``) and the ``fastmon-tail`` console script (a served site only: no
database, no Django settings)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Callable
from typing import Any

from django.core.management.base import OutputWrapper

from fastmon.tail.answers import Fatal, origin
from fastmon.tail.remote import follow_remote
from fastmon.tail.render import Frame, JsonView, TableView, View, printable
from fastmon.tail.tally import WINDOW_S, Tally

# The database follower, given by the management command (the console script has none).
Follower = Callable[[int | None, Callable[[Frame], bool], View, bool, float, threading.Event], None]


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--url", type=_site_url, metavar="URL",
        help="follow a served site instead of the database: fastmon's address there, e.g. "
        "https://host/swf-monitor/fastmon/ (its websocket and API)",
    )  # fmt: skip
    parser.add_argument(
        "--token", default=os.environ.get("FASTMON_TOKEN"),
        help="API token for --url (default: $FASTMON_TOKEN)",
    )  # fmt: skip
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


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper,
        database: Follower | None) -> None:  # fmt: skip
    """Follow until SIGINT/SIGTERM (or, with --once, until caught up). A site that refuses
    exits 1, one whose answer will not be used exits 3, each with one line saying why."""
    view: View
    if options["as_json"]:
        view = JsonView(out, err)
    else:
        view = TableView(out, err, Tally(options["window"]), options["refresh"])
    run_number, kinds = options["run_number"], options["kinds"]
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }

    def wanted(frame: Frame) -> bool:
        return (run_number is None or frame["run_number"] == run_number) and (
            kinds is None or frame["kind"] in kinds
        )

    args = (options["since"], wanted, view, options["once"], options["interval"], stop)
    try:
        if options["url"]:
            follow_remote(options["url"], options["token"], *args)
        elif database is not None:
            database(*args)
        else:
            raise SystemExit("fastmon-tail: give --url (the database is read by "
                             "`manage.py fastmon_tail`)")  # fmt: skip
    except Fatal as exc:
        err.write(printable(f"fastmon-tail: {exc}"))
        raise SystemExit(exc.status) from None
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and nothing to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main() -> None:
    """The ``fastmon-tail`` console script."""
    parser = ArgumentParser(
        prog="fastmon-tail",
        description="Follow a fastmon site's live events over its websocket and API.",
    )
    add_arguments(parser)
    options = vars(parser.parse_args())
    if not options["url"]:
        parser.error("--url is required (the database is read by `manage.py fastmon_tail`)")
    run(options, OutputWrapper(sys.stdout), OutputWrapper(sys.stderr), database=None)


def _site_url(text: str) -> str:
    if not text.lower().startswith(("http://", "https://")):
        raise ArgumentTypeError("must be an http:// or https:// address")
    try:
        origin(text)  # a host, and a port that is a number
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from None
    return text


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
