"""The simulator on a real broker, as ``fastmon_simulate`` and the demo run it: messages sent in
batches confirmed by one receipt each, progress shown while it plays, signals that stop it, and
the fast-processing stage played beside it."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from argparse import ArgumentTypeError
from collections.abc import Callable
from typing import Any

from django.core.management.base import OutputWrapper
from django.utils.module_loading import import_string

from fastmon.conf import fastmon_settings
from fastmon.simulator.downstream import DownstreamOptions, FastProcessing
from fastmon.simulator.player import Progress, SimulationOptions, Simulator
from fastmon.transport.base import Delivery, Outgoing
from fastmon.transport.stomp import StompTransport

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


def describe(options: SimulationOptions, transport: StompTransport) -> str:
    runs = "runs until stopped" if options.runs is None else f"{options.runs} run(s)"
    files = "no files"
    if options.data_dir is not None:
        files = f"{file_kind(options)} STF files of {options.stf_size} bytes in {options.data_dir}"
    return (
        f"fastmon_simulate: {runs} of {options.stfs_per_run} STFs at {options.rate} STF/s, "
        f"{options.shape} shape{', with stf_ready' if options.stf_ready else ''}, {files}; "
        f"to {options.destination} on {transport.describe()}"
    )


def file_kind(options: SimulationOptions) -> str:
    """What the STF files written hold, in a word or three."""
    if options.sparse:
        return "sparse"
    if options.content == "random":
        return "pseudo-random"
    return "ETF1 (tf_offsets announced)" if options.tf_offsets else "ETF1"


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


def agent_transport(role: str, **options: Any) -> StompTransport:
    """A connection of the configured class for an agent played beside fastmon's consumer. A
    STOMP connection that is not durable takes the client-id AGENT_NAME.<host>.<pid>, which the
    consumer's may hold: each played agent gets one of its own."""
    connection = import_string(fastmon_settings.TRANSPORT)(**options)
    if isinstance(connection, StompTransport):
        connection.client_id += f".{role}"
    return connection


class FastPathOnBroker:
    """The fast-processing stage played (``downstream.FastProcessing``) on a broker: it hears
    of samples on ``listen`` and sends slices and results through a connection of its own.
    ``run()`` blocks until ``stop()``; results still due then are not sent."""

    def __init__(self, listen: str, options: DownstreamOptions) -> None:
        self.listen = listen
        self.play = FastProcessing(options, self._send)
        self.incoming = agent_transport("fast-path-in", on_delivery=self._receive)
        self.outgoing = agent_transport("fast-path-out")

    def run(self) -> None:
        self.outgoing.connect()
        self.incoming.connect()
        self.incoming.subscribe([self.listen], durable=False)
        try:
            self.play.run()
        finally:
            self.incoming.disconnect()
            self.outgoing.disconnect()

    def stop(self) -> None:
        self.play.stop()

    def _receive(self, delivery: Delivery) -> None:
        body = json.loads(delivery.body)
        if body.get("msg_type") == "tf_file_registered":
            self.play.registered(body)
        self.incoming.ack([delivery])

    def _send(self, destination: str, body: str) -> None:
        self.outgoing.send([Outgoing(destination, body)])
