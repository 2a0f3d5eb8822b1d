"""Realistic testbed traffic for fastmon: runs of STF announcements, and the STF files behind them.

A ``Simulator`` plays runs as the testbed does (``run_imminent``, ``start_run``, STFs at a chosen
rate with pauses, ``end_run``) in one of the two shapes the testbed uses: the workflow runner's
(``runner``) or the standalone DAQ simulator's (``daqsim``). After each ``stf_gen`` it can also
play the data agent (``stf_ready``: file URL, size, checksum), which is what fastmon samples on.
With a data directory it writes each STF file first, with deterministic content (the same seed
gives the same bytes and checksums): ETF1 with realistic hits, whose TF offsets ``stf_ready``
announces (``tf_offsets``), or pseudo-random bytes, or sparse (zeros, no disk used) for large
sizes.

How messages travel is not its business: it is given a ``send(destination, body)`` callable and
an optional ``flush()`` called before every wait, so a sender may batch (broker receipts) and
still have everything out before the simulator idles. ``run()`` blocks; ``stop()`` (any thread,
a signal handler) ends the open run with its ``end_run`` and returns. Pure Python, no Django.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from fastmon.content.detectors import DetectorMap
from fastmon.simulator.content import default_detectors
from fastmon.simulator.detector_faults import NEEDS_ETF1, DetectorFault, fault_problem
from fastmon.simulator.faults import AnyFault, Faults
from fastmon.simulator.files import CONTENTS, Content, write_stf
from fastmon.simulator.shapes import (
    DEFAULT_TF_COUNT,
    DESTINATION,
    MIN_WAIT_S,
    TF_SECONDS,
    Body,
    DaqsimShape,
    MessageShape,
    Run,
    RunnerShape,
    Shape,
    Stf,
    default_first_run,
    stf_ready,
)


@dataclass(frozen=True)
class SimulationOptions:
    """What to play. ``runs=None`` plays runs until stopped; ``pause_after=N`` pauses for
    ``pause_for`` seconds after every N STFs of a run (not after its last)."""

    runs: int | None = 1
    stfs_per_run: int = 10
    rate: float = 0.5  # STFs per second
    shape: Shape = "runner"
    namespace: str | None = None
    destination: str = DESTINATION
    stf_ready: bool = True
    data_dir: Path | None = None
    # Announce the files written under data_dir as this URL prefix (root://..., http://...)
    # instead of file:// URLs: for STFs read remotely, the prefix serving data_dir.
    url_prefix: str | None = None
    stf_size: int = 64 * 1024 * 1024  # ETF1 comes near it; the real size is announced
    sparse: bool = False  # zeros whatever the content
    content: Content = "etf1"  # or "random": pseudo-random bytes
    # ETF1 files written have tf_count TFs (DEFAULT_TF_COUNT when None); stf_ready announces
    # their offsets, and tf_count with them, unless tf_offsets is False.
    tf_count: int | None = None
    tf_offsets: bool = True
    detectors: DetectorMap | None = None  # whose sources ETF1 files hold; None: the testbed's
    pause_after: int | None = None
    pause_for: float = 5.0
    first_run: int | None = None
    seed: int = 0
    # Injected in every run (``faults``); the detector faults into the ETF1 files written.
    faults: tuple[AnyFault, ...] = ()

    def __post_init__(self) -> None:
        checks = [
            (self.runs is not None and self.runs < 1, "runs must be at least 1"),
            (self.stfs_per_run < 0, "STFs per run cannot be negative"),
            (not self.rate > 0, "rate must be above 0 STF/s"),
            (self.shape not in ("runner", "daqsim"), "shape must be runner or daqsim"),
            (self.stf_size < 0, "STF size cannot be negative"),
            (self.content not in CONTENTS, f"content must be one of {', '.join(CONTENTS)}"),
            (self.tf_count is not None and self.tf_count < 1, "tf_count must be at least 1"),
            (self.pause_after is not None and self.pause_after < 1, "pause_after must be >= 1"),
            (self.pause_for < 0, "pause_for cannot be negative"),
            (self.first_run is not None and self.first_run < 0, "run cannot be negative"),
            (self.url_prefix is not None and self.data_dir is None,
             "url_prefix needs a data_dir it serves"),
            (bool(self.url_prefix) and not str(self.url_prefix).endswith("/"),
             "url_prefix must end with /"),
        ]  # fmt: skip
        if detector_faults := [f for f in self.faults if isinstance(f, DetectorFault)]:
            checks += [
                (self.content != "etf1" or self.sparse, NEEDS_ETF1),
                (self.data_dir is None, "detector faults need the STF files written (a data_dir)"),
            ]
            detectors = default_detectors() if self.detectors is None else self.detectors
            checks += [(True, p) for f in detector_faults if (p := fault_problem(f, detectors))]
        if problems := [message for failed, message in checks if failed]:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Progress:
    """A snapshot, safe to take from another thread. ``lag_s`` > 0: STFs go out later than the
    rate asks (the sender or the disk is slower)."""

    messages: int
    stfs: int
    runs_started: int
    run: int | None
    elapsed_s: float
    lag_s: float
    paused: bool


class Simulator:
    """Plays ``options`` through ``send``; see the module's docstring."""

    def __init__(
        self,
        options: SimulationOptions,
        send: Callable[[str, str], None],
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.options = options
        self._send = send
        self._flush = flush or (lambda: None)
        self.shape: MessageShape = (
            RunnerShape(options.namespace) if options.shape == "runner" else DaqsimShape()
        )
        self.faults = Faults(options.faults)
        self._stopping = threading.Event()
        self._messages = self._stfs = self._runs_started = 0
        self._run: int | None = None
        self._started: float | None = None
        self._lag = 0.0
        self._paused = False
        # The schedule: STF n after the last (re)start is due at _epoch + n / rate.
        self._epoch = 0.0
        self._paced = 0

    def stop(self) -> None:
        """Finish cleanly: the open run gets its end_run, then ``run()`` returns."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def progress(self) -> Progress:
        elapsed = time.monotonic() - self._started if self._started is not None else 0.0
        return Progress(self._messages, self._stfs, self._runs_started, self._run, elapsed,
                        self._lag, self._paused)  # fmt: skip

    def run(self) -> Progress:
        """Play every run (or until ``stop()``); return the final progress."""
        options = self.options
        self._started = self._epoch = time.monotonic()
        first = default_first_run() if options.first_run is None else options.first_run
        numbers = (
            itertools.count(first) if options.runs is None else range(first, first + options.runs)
        )
        for number in numbers:
            if self.stopping:
                break
            self._play_run(Run(number, f"stf_datataking-sim-{number}"))
        self._flush()
        return self.progress()

    def _play_run(self, run: Run) -> None:
        options, shape = self.options, self.shape
        opened = time.monotonic()

        def tick() -> float:
            return round(time.monotonic() - opened, 1)

        self._run, self._runs_started = run.number, self._runs_started + 1
        self._emit(shape.run_imminent(run, datetime.now(), tick()))
        self._emit(shape.start_run(run, datetime.now(), tick()))
        run_dir = self._run_dir(run)
        sequence = 0
        while sequence < options.stfs_per_run and not self.stopping:
            standby = options.pause_after and sequence and sequence % options.pause_after == 0
            if standby and not self._pause(run, tick):
                break
            if not self._wait_for_next_stf() or not self._fault_waits(sequence + 1):
                break
            sequence += 1
            if not self.faults.skipped(sequence):  # a gap: the DAQ counts it, none announces it
                self._announce(run, self._take_stf(run, sequence, tick(), run_dir))
        self._emit(shape.end_run(run, datetime.now(), tick(), sequence))

    def _pause(self, run: Run, tick: Callable[[], float]) -> bool:
        """Standby for ``pause_for`` seconds; False when stopped meanwhile."""
        self._paused = True
        self._emit(self.shape.pause_run(run, datetime.now(), tick()))
        stopped = self._wait(self.options.pause_for)
        self._paused = False
        if stopped:
            return False
        self._emit(self.shape.resume_run(run, datetime.now(), tick()))
        self._epoch, self._paced = time.monotonic(), 0
        return True

    def _fault_waits(self, sequence: int) -> bool:
        """A stall, or a slower rate, before this STF (the run still running); the schedule
        starts again after it. False when stopped meanwhile."""
        rate = self.options.rate
        extra = self.faults.stall_before(sequence)
        extra += 1 / (rate * self.faults.rate_factor(sequence)) - 1 / rate
        if extra <= 0:
            return True
        if self._wait(extra):
            return False
        self._epoch, self._paced = time.monotonic(), 1
        return True

    def _wait_for_next_stf(self) -> bool:
        """Hold until the next STF is due; False when stopped meanwhile."""
        due = self._epoch + self._paced / self.options.rate
        self._paced += 1
        ahead = due - time.monotonic()
        self._lag = max(0.0, -ahead)
        return not (self._wait(ahead) if ahead >= MIN_WAIT_S else self.stopping)

    def _wait(self, seconds: float) -> bool:
        """Flush, then wait; True when stopped meanwhile."""
        self._flush()
        return self._stopping.wait(seconds)

    def _run_dir(self, run: Run) -> Path | None:
        if self.options.data_dir is None:
            return None
        path = self.options.data_dir / f"swf.{run.number:06d}.run"  # as the DAQ simulator does
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()

    def _take_stf(self, run: Run, sequence: int, tick: float, run_dir: Path | None) -> Stf:
        """The STF's file first (when writing them), so it exists once announced."""
        options = self.options
        start = datetime.now()
        tf_count = options.tf_count or DEFAULT_TF_COUNT
        end = start + timedelta(seconds=tf_count * TF_SECONDS)
        stf = Stf(run.number, sequence, start, end, tick, options.stf_size)
        if run_dir is not None:
            path = run_dir / stf.filename
            written = write_stf(path, options.stf_size, content=options.content,
                                sparse=options.sparse, seed=options.seed, tf_count=tf_count,
                                sequence=sequence, detectors=options.detectors,
                                faults=self.faults.detector_faults(sequence))  # fmt: skip
            # run_dir is a directory of data_dir's
            url = (f"{options.url_prefix}{run_dir.name}/{stf.filename}" if options.url_prefix
                   else path.as_uri())  # fmt: skip
            offsets = written.tf_offsets if options.tf_offsets else None
            stf = replace(stf, size=written.size, checksum=written.checksum, file_url=url,
                          tf_offsets=offsets)  # fmt: skip
        if (factor := self.faults.size_factor(sequence)) != 1:  # announced so; file unchanged
            stf = replace(stf, size=round(stf.size * factor))
        return stf

    def _announce(self, run: Run, stf: Stf) -> None:
        options = self.options
        self._emit(self.shape.stf_gen(run, stf))
        if self.faults.repeated(stf.sequence):
            self._emit(self.shape.stf_gen(run, stf))
        if options.stf_ready:
            run_id = self.shape.run_id(run.number)
            self._emit(stf_ready(run_id, stf, options.namespace, tf_count=options.tf_count))
        self._stfs += 1

    def _emit(self, body: Body | None) -> None:
        if body is not None:
            self._send(self.options.destination, json.dumps(body))
            self._messages += 1
