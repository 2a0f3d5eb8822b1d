"""The demo's parts and their order: uvicorn serving the site, run_fastmon's consumer, the
simulator and a progress line; started by ``python -m demo`` once Django is set up.

Threads and the event loop: uvicorn's loop, in the main thread, runs every websocket consumer,
and the in-memory channel layer's queues belong to it; nothing may touch them from another
thread. Live events are pushed by ``fastmon.live.push.broadcast`` after each commit, from the thread
that committed: the consumer's (ingest, and sampling, which Celery runs eagerly at commit). So
the pushes are sent on uvicorn's loop (``push.push_on``), and the consumer, blocking, runs in a
worker thread (``sync_to_async(..., thread_sensitive=False)``) awaited on that loop. The
simulator only sends, through a transport of its own: a plain thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connections

from demo import PREFIX, backends, say
from demo.asgi import application
from fastmon.conf import fastmon_settings
from fastmon.content.detectors import detector_map
from fastmon.live import push
from fastmon.models import RunContent, StfFile, TfSample
from fastmon.runtime.consumer import Consumer
from fastmon.runtime.startup import ExitCode
from fastmon.simulator.downstream import DownstreamOptions
from fastmon.simulator.player import SimulationOptions, Simulator
from fastmon.simulator.sending import (
    FastPathOnBroker,
    ReceiptBatches,
    agent_transport,
    file_kind,
    progress_line,
)
from fastmon.subscribers.rules import parse_subscription
from fastmon.subscribers.service import save_subscriber
from fastmon.transport.base import BrokerAuthFailed, BrokerError

PROGRESS_TTY_S = 1.0  # a terminal: the progress line redrawn in place
PROGRESS_LOG_S = 5.0  # a pipe or a file: one line this often
SEND_BATCH = 100  # simulator messages per broker receipt
SERVER_GRACE_S = 5.0  # open connections get this long to close at the stop


class QuietServer(uvicorn.Server):
    """uvicorn without signal handlers of its own: the demo stops its parts in order itself
    (uvicorn's would also raise the signal again once it has stopped)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run(args: argparse.Namespace, listener: socket.socket) -> int:
    """Start server, consumer and simulator; at a signal, or when a part fails, stop them in
    that order. Return the exit code: the consumer's (``ExitCode``), else the simulator's."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    config = uvicorn.Config(application, lifespan="off", log_level="warning",
                            access_log=False, timeout_graceful_shutdown=SERVER_GRACE_S)  # fmt: skip
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    if not await wait_for(lambda: server.started, serving):
        await serving
        return 1
    options = replace(args.simulation, namespace=fastmon_settings.NAMESPACE,
                      data_dir=Path(settings.STF_DIR), detectors=detector_map())  # fmt: skip
    say(f"{PREFIX} http://127.0.0.1:{listener.getsockname()[1]}/fastmon/")
    used = backends.describe(args.database_url, args.broker_url, args.redis_url)
    say(f"{PREFIX} {used}; simulator: {plan(options)}; Ctrl-C stops")

    push.push_on(loop)
    consumer = Consumer()
    consuming = asyncio.ensure_future(sync_to_async(consume, thread_sensitive=False)(consumer))
    stopped = asyncio.create_task(stop.wait())
    simulation = stage = None
    # Announcements sent before the consumer subscribed could miss a new durable subscription.
    if await wait_for(consumer.started.is_set, consuming, stopped):
        stage = await sync_to_async(fast_path)()
        playing = asyncio.ensure_future(asyncio.to_thread(stage.run))
        simulation = Simulation(options, stop)
    await asyncio.wait([stopped, consuming, serving], return_when=asyncio.FIRST_COMPLETED)

    simulator_code = await simulation.finish() if simulation else 0
    if stage:
        stage.stop()
        await playing
    consumer.stop()
    code = int(await consuming) or simulator_code
    server.should_exit = True
    await serving
    await sync_to_async(connections.close_all)()
    say(f"{PREFIX} stopped cleanly" if code == 0 else f"{PREFIX} stopped, exit code {code}")
    return code


async def wait_for(ready: Callable[[], bool], *ends: asyncio.Future[Any]) -> bool:
    """Poll ``ready`` until it holds (True) or one of ``ends`` is done (False)."""
    while not ready():
        if any(end.done() for end in ends):
            return False
        await asyncio.sleep(0.05)
    return True


def consume(consumer: Consumer) -> int:
    """run_fastmon's loop, in a worker thread that closes its database connections at the end."""
    try:
        return consumer.run()
    finally:
        connections.close_all()


class Simulation:
    """The simulator in a thread of its own, sending through a transport of the configured
    class as a DAQ agent sends through the broker, and the progress line beside it."""

    def __init__(self, options: SimulationOptions, stop: asyncio.Event) -> None:
        self.transport = agent_transport("simulator")
        sender = ReceiptBatches(self.transport, SEND_BATCH)
        self.simulator = Simulator(options, sender.send, sender.flush)
        self.playing = asyncio.ensure_future(self._play(stop))
        self.reporting = asyncio.create_task(self._report())

    async def finish(self) -> int:
        """Stop the simulator (its open run ends) and the progress line; the exit code."""
        self.simulator.stop()
        code = await self.playing
        self.reporting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reporting
        ending = "\n" if sys.stdout.isatty() else ""
        say(f"{ending}{await self._line()}")
        return code

    async def _play(self, stop: asyncio.Event) -> int:
        try:
            await asyncio.to_thread(self._run)
        except BrokerError as exc:
            say(f"{PREFIX} simulator: {exc}", stream=sys.stderr)
            stop.set()
            return ExitCode.AUTH if isinstance(exc, BrokerAuthFailed) else ExitCode.UNREACHABLE
        return 0

    def _run(self) -> None:
        self.transport.connect()
        try:
            self.simulator.run()
        finally:
            self.transport.disconnect()

    async def _report(self) -> None:
        """One line every PROGRESS_LOG_S, or redrawn in place every PROGRESS_TTY_S on a tty."""
        tty = sys.stdout.isatty()
        while True:
            await asyncio.sleep(PROGRESS_TTY_S if tty else PROGRESS_LOG_S)
            line = await self._line()
            say(f"\r{line}\x1b[K", end="") if tty else say(line)

    async def _line(self) -> str:
        try:
            stfs, samples, decoded = await sync_to_async(counts)()
            stored = f"{stfs} STFs ingested, {samples} TF samples, {decoded} TFs decoded"
        except DatabaseError as exc:
            stored = f"database unavailable ({str(exc).strip()})"
        progress = self.simulator.progress()
        return (
            f"{PREFIX} {stored}; simulator {progress_line(progress, self.simulator.options.runs)}"
        )


def fast_path() -> FastPathOnBroker:
    """The fast-processing stage played beside the simulator: it hears of each sample as one
    of fastmon's subscribers, and its workers answer where fastmon reads the broker's copy of
    the results queue, as there is no fast-processing agent here to read the queue."""
    queue = "/queue/fastmon.demo.fastprocessing"
    save_subscriber(parse_subscription({
        "name": "demo-fast-processing", "destination": queue, "idle_expiry_s": None,
    }), by="demo")  # fmt: skip
    destinations = fastmon_settings.FAST_PROCESSING_DESTINATIONS
    return FastPathOnBroker(queue, DownstreamOptions(
        slices_destination=destinations[0], results_destination=destinations[-1],
        tf_per_slice=10,
    ))  # fmt: skip


def counts() -> tuple[int, int, int]:
    """STFs and TF samples stored, and TFs decoded into the runs' histograms, over all runs."""
    decoded = sum(summary.get("tfs_decoded", 0)
                  for summary in RunContent.objects.values_list("summary", flat=True))  # fmt: skip
    return StfFile.objects.count(), TfSample.objects.count(), decoded


def plan(options: SimulationOptions) -> str:
    runs = "runs until stopped" if options.runs is None else f"{options.runs} runs"
    return (
        f"{runs} of {options.stfs_per_run} STFs at {options.rate} STF/s, "
        f"{file_kind(options)} STF files of {options.tf_count} TFs, {options.stf_size} bytes, "
        f"in {options.data_dir}"
    )
