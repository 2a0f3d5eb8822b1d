from __future__ import annotations

import re
import signal
import threading
import time
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from fastmon.conf import fastmon_settings
from fastmon.messaging.transports import (
    BrokerAuthFailed,
    BrokerError,
    BrokerRefused,
    Outgoing,
    StompTransport,
    validate_destination,
)
from fastmon.simulator import Progress, SimulationOptions, Simulator

TTY_REFRESH_S = 0.5
LOG_EVERY_S = 10.0
_SIZE_RE = re.compile(r"^(\d+)\s*([kmgt]?)(i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def byte_size(text: str) -> int:
    """``1048576``, ``64M``, ``2GiB``: binary multiples, as file sizes are usually given."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise ArgumentTypeError(f"{text!r} is not a size (examples: 4096, 64M, 2G)")
    return int(match[1]) * _UNITS[match[2].lower()]


class ReceiptBatches:
    """Sends through ``StompTransport`` with one broker receipt per batch: confirmed delivery
    without a round trip per message, which would cap the rate far below thousands per second."""

    def __init__(self, transport: StompTransport, batch_size: int) -> None:
        self.transport = transport
        self.batch_size = batch_size
        self.pending: list[Outgoing] = []

    def send(self, destination: str, body: str) -> None:
        self.pending.append(Outgoing(destination, body))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        self.transport.send(batch)


class Command(BaseCommand):
    help = (
        "Play realistic testbed runs to the broker: run_imminent, start_run, STF announcements "
        "(stf_gen, and stf_ready as the data agent sends it) at a chosen rate with pauses, "
        "end_run; in the workflow runner's or the DAQ simulator's message shape; optionally "
        "writing the STF files. SIGINT/SIGTERM ends the open run with its end_run and exits 0. "
        "Exit codes: 1 bad options, 3 login refused, 4 broker unreachable or lost, "
        "6 broker refused a message."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = SimulationOptions
        parser.add_argument(
            "--runs",
            type=int,
            default=defaults.runs,
            help="runs to play; 0: until stopped (default %(default)s)",
        )
        parser.add_argument(
            "--stfs",
            type=int,
            default=defaults.stfs_per_run,
            help="STFs per run (default %(default)s)",
        )
        parser.add_argument(
            "--rate",
            type=float,
            default=defaults.rate,
            help="STFs per second: 0.5 is the testbed, thousands a load test (default %(default)s)",
        )
        parser.add_argument(
            "--shape",
            choices=["runner", "daqsim"],
            default=defaults.shape,
            help="message shape: the workflow runner's or the standalone DAQ "
            "simulator's (default %(default)s)",
        )
        parser.add_argument(
            "--no-stf-ready",
            action="store_true",
            help="send stf_gen only (no data agent's stf_ready)",
        )
        parser.add_argument(
            "--namespace",
            default=None,
            help="testbed namespace in the bodies (default FASTMON NAMESPACE)",
        )
        parser.add_argument(
            "--destination",
            default=None,
            help="where to send (default the first SUBSCRIBE_DESTINATIONS)",
        )
        parser.add_argument(
            "--run",
            type=int,
            default=None,
            dest="first_run",
            help="first run number (default: from the clock, unique)",
        )
        parser.add_argument(
            "--pause-after",
            type=int,
            default=None,
            help="pause (standby) after every N STFs of a run",
        )
        parser.add_argument(
            "--pause-for",
            type=float,
            default=defaults.pause_for,
            help="seconds each pause lasts (default %(default)s)",
        )
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="write each STF file under this directory (in FASTMON "
            "DATA_ROOTS for fastmon to read them)",
        )
        parser.add_argument(
            "--stf-size",
            type=byte_size,
            default=defaults.stf_size,
            help="STF size in bytes, or with K, M, G (default 64M)",
        )
        parser.add_argument(
            "--sparse", action="store_true", help="write sparse files (zeros, no disk used)"
        )
        parser.add_argument(
            "--tf-count",
            type=int,
            default=None,
            help="TFs per STF, announced in stf_ready (default: none announced, "
            "fastmon assumes its DEFAULT_TF_COUNT)",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=defaults.seed,
            help="seed of the files' content (default %(default)s)",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=500,
            help="messages per broker receipt (default %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        destination = options["destination"] or fastmon_settings.SUBSCRIBE_DESTINATIONS[0]
        namespace = options["namespace"] or fastmon_settings.NAMESPACE
        try:
            validate_destination(destination)
            if options["batch"] < 1:
                raise ValueError("batch must be at least 1")
            simulation = SimulationOptions(
                runs=options["runs"] or None, stfs_per_run=options["stfs"], rate=options["rate"],
                shape=options["shape"], namespace=namespace, destination=destination,
                stf_ready=not options["no_stf_ready"], data_dir=options["data_dir"],
                stf_size=options["stf_size"], sparse=options["sparse"],
                tf_count=options["tf_count"], pause_after=options["pause_after"],
                pause_for=options["pause_for"], first_run=options["first_run"],
                seed=options["seed"],
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from None

        transport = StompTransport()
        try:
            transport.connect()
        except BrokerAuthFailed as exc:
            raise CommandError(str(exc), returncode=3) from None
        except BrokerError as exc:
            raise CommandError(str(exc), returncode=4) from None
        sender = ReceiptBatches(transport, options["batch"])
        simulator = Simulator(simulation, sender.send, sender.flush)
        self.stdout.write(describe(simulation, transport))
        try:
            final = run_with_progress(simulator, self.stdout)
        except BrokerRefused as exc:
            raise CommandError(str(exc), returncode=6) from None
        except BrokerError as exc:
            raise CommandError(str(exc), returncode=4) from None
        finally:
            transport.disconnect()
        ending = "stopped" if simulator.stopping else "done"
        self.stdout.write(f"fastmon_simulate {ending}: {progress_line(final, simulation.runs)}")


def describe(options: SimulationOptions, transport: StompTransport) -> str:
    runs = "runs until stopped" if options.runs is None else f"{options.runs} run(s)"
    files = "no files"
    if options.data_dir is not None:
        kind = "sparse " if options.sparse else ""
        files = f"{kind}STF files of {options.stf_size} bytes in {options.data_dir}"
    return (
        f"fastmon_simulate: {runs} of {options.stfs_per_run} STFs at {options.rate} STF/s, "
        f"{options.shape} shape{', with stf_ready' if options.stf_ready else ''}, {files}; "
        f"to {options.destination} on {transport.describe()}"
    )


def progress_line(progress: Progress, runs: int | None) -> str:
    of_runs = f"{progress.runs_started}/{runs}" if runs else f"{progress.runs_started}"
    elapsed = progress.elapsed_s
    rate = progress.stfs / elapsed if elapsed > 0 else 0.0
    state = " (paused)" if progress.paused else ""
    lag = f", {progress.lag_s:.2f} s behind" if progress.lag_s >= 0.01 else ""
    return (
        f"run {progress.run} ({of_runs}){state}: {progress.stfs} STFs, "
        f"{progress.messages} messages, {rate:.1f} STF/s{lag}, {elapsed:.1f} s"
    )


def run_with_progress(simulator: Simulator, out: OutputWrapper) -> Progress:
    """Run the simulator in a thread while this (main) thread shows progress and takes
    SIGINT/SIGTERM, which stop it cleanly; return its final progress or raise its error."""
    outcome: list[Progress | BaseException] = []

    def play() -> None:
        try:
            outcome.append(simulator.run())
        except BaseException as exc:  # re-raised in the main thread below
            outcome.append(exc)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: simulator.stop())
    thread = threading.Thread(target=play, name="fastmon-simulator", daemon=True)
    thread.start()
    runs = simulator.options.runs
    show = _in_place(out, runs) if out.isatty() else _periodic(out, runs)
    while thread.is_alive():
        thread.join(TTY_REFRESH_S)
        show(simulator.progress())
    if out.isatty():
        out.write("")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _in_place(out: OutputWrapper, runs: int | None) -> Callable[[Progress], None]:
    def show(progress: Progress) -> None:
        out.write(f"\r{progress_line(progress, runs)}\x1b[K", ending="")
        out.flush()

    return show


def _periodic(out: OutputWrapper, runs: int | None) -> Callable[[Progress], None]:
    next_at = time.monotonic() + LOG_EVERY_S

    def show(progress: Progress) -> None:
        nonlocal next_at
        if time.monotonic() >= next_at:
            out.write(progress_line(progress, runs))
            next_at += LOG_EVERY_S

    return show
