"""``python -m demo``: fastmon's whole pipeline in one process, on the embedded default (SQLite,
an in-process broker, the in-memory channel layer, Celery in-process) or on real services
(``--broker-url``, ``--database-url``, ``--redis-url``).

It migrates the database, then serves the site (pages, API, live websocket) on 127.0.0.1, runs
run_fastmon's ``Consumer`` and plays testbed runs with the ``Simulator``, which writes real STF
files that sampling reads (``demo.pipeline``). The code is production's: only the transport and
the backends differ. SIGINT (Ctrl-C) or SIGTERM stops it cleanly, exit status 0; otherwise the
status is run_fastmon's (``ExitCode``), or 1 when the port cannot be had.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path

import django
from django.core.management import call_command
from django.db import OperationalError

from demo import PREFIX, backends, say
from fastmon.simulator.faults import parse_fault
from fastmon.simulator.files import CONTENTS
from fastmon.simulator.player import SimulationOptions
from fastmon.simulator.sending import byte_size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="fastmon's whole pipeline in one process: dashboard, consumer, sampling "
        "and a DAQ simulator, on SQLite with an in-process broker unless given real services. "
        "Ctrl-C stops it.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port on 127.0.0.1 (default %(default)s; 0: any free one)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="runs the simulator plays; 0: until stopped (default %(default)s)",
    )
    parser.add_argument("--stfs", type=int, default=100, help="STFs per run (default %(default)s)")
    parser.add_argument(
        "--rate", type=float, default=2.0, help="STFs per second (default %(default)s)"
    )
    parser.add_argument(
        "--stf-size",
        type=byte_size,
        default=256 * 1024,
        help="bytes per STF file, or with K, M, G (default 256K; an ETF1 file comes near it)",
    )
    parser.add_argument(
        "--tf-count",
        type=int,
        default=100,
        help="TFs per STF file, announced (default %(default)s: about 160 hits a TF at 256K)",
    )
    parser.add_argument(
        "--content",
        choices=CONTENTS,
        default="etf1",
        help="what the STF files hold: ETF1 (realistic hits over the detector map) or "
        "pseudo-random bytes, which fastmon samples without content (default %(default)s)",
    )
    parser.add_argument(
        "--no-tf-offsets",
        action="store_true",
        help="leave the ETF1 files' TF offsets out of stf_ready",
    )
    parser.add_argument(
        "--pause-after",
        type=int,
        default=40,
        help="a standby of 5 s after every N STFs of a run (default %(default)s)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND@N[:VALUE]",
        help="inject a fault in every run, repeatable: gap@N, duplicate@N, stall@N:SECONDS, "
        "slow@N:FACTOR, oversize@N:FACTOR; and, into the ETF1 files from STF N on (@N-M: N to "
        "M), hot_channel@N:DET[:SOURCE[:CHANNEL]], dead_channel@N:DET[:SOURCE[:CHANNEL]], "
        "dead_source@N:DET[:SOURCE], gain@N:DET:FACTOR, noise@N:DET:RATE, "
        "corrupt@N[:FRACTION] (e.g. --fault gap@12 --fault hot_channel@20:SVT)",
    )
    parser.add_argument(
        "--stf-url-prefix",
        help="announce the STF files as URLs under this prefix (root://..., http://...), read "
        "remotely: a server of the demo's STF directory (FASTMON_DEMO_DIR/stf/)",
    )
    parser.add_argument(
        "--destination",
        default="/topic/epictopic",
        help="where the simulator sends and fastmon reads (default %(default)s)",
    )
    services = parser.add_argument_group(
        "real services", "each replaces one embedded backend (Celery stays in-process)"
    )
    services.add_argument("--broker-url", help="stomp://user:password@host:61613 (ActiveMQ)")
    services.add_argument("--database-url", help="postgresql://user:password@host:5432/name")
    services.add_argument("--redis-url", help="redis://host:6379/0, for the channel layer")
    args = parser.parse_args(argv)
    try:
        backends.broker(args.broker_url)
        backends.database(args.database_url, Path())
        backends.channel_layer(args.redis_url, "")
        args.simulation = SimulationOptions(
            runs=args.runs or None, stfs_per_run=args.stfs, rate=args.rate,
            destination=args.destination, stf_size=args.stf_size, tf_count=args.tf_count,
            content=args.content, tf_offsets=not args.no_tf_offsets,
            pause_after=args.pause_after or None,
            faults=tuple(parse_fault(text) for text in args.fault),
            # Checked here, detector faults over the testbed's map, which the demo's is; the data
            # directory is the demo settings' own.
            url_prefix=args.stf_url_prefix, data_dir=Path(),
        )  # fmt: skip
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    for name, value in [
        (backends.BROKER_ENV, args.broker_url),
        (backends.DATABASE_ENV, args.database_url),
        (backends.REDIS_ENV, args.redis_url),
        (backends.DESTINATION_ENV, args.destination),
        (backends.STF_URL_PREFIX_ENV, args.stf_url_prefix),
    ]:
        if value:
            os.environ[name] = value
    # Bound first: a port in use is said at once, and --port 0 tells its real number.
    try:
        listener = socket.create_server(("127.0.0.1", args.port))
    except OSError as exc:
        say(f"{PREFIX} cannot listen on 127.0.0.1:{args.port}: {exc}", stream=sys.stderr)
        return 1
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"  # the demo is this site, always
    try:
        django.setup()
        call_command("migrate", verbosity=0)
        from demo.pipeline import run  # needs the apps loaded

        return asyncio.run(run(args, listener))
    except OperationalError as exc:
        say(f"{PREFIX} database unreachable: {exc}", stream=sys.stderr)
        return 5
    except KeyboardInterrupt:  # before the demo took over the signals
        return 130


if __name__ == "__main__":
    sys.exit(main())
