"""Realistic testbed traffic for fastmon: runs of STF announcements, and the STF files behind them.

A ``Simulator`` plays runs as the testbed does (``run_imminent``, ``start_run``, STFs at a chosen
rate with pauses, ``end_run``) in one of the two shapes of ``shared/spec``: the workflow runner's
(``runner``) or the standalone DAQ simulator's (``daqsim``). After each ``stf_gen`` it can also
play the data agent (``stf_ready``: file URL, size, checksum), which is what fastmon samples on.
With a data directory it writes each STF file first, with deterministic content (the same seed
gives the same bytes and checksums), or sparse (zeros, no disk used) for large sizes.

How messages travel is not its business: it is given a ``send(destination, body)`` callable and
an optional ``flush()`` called before every wait, so a sender may batch (broker receipts) and
still have everything out before the simulator idles. ``run()`` blocks; ``stop()`` (any thread,
a signal handler) ends the open run with its ``end_run`` and returns. Pure Python, no Django.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

Shape = Literal["runner", "daqsim"]
Body = dict[str, Any]

DESTINATION = "/topic/epictopic"
DEFAULT_TF_COUNT = 1000  # what fastmon assumes when an announcement gives none
TF_SECONDS = 0.000665  # 2^16 bunch crossings
RUNNER_NAME = "workflow_runner-agent-fastmon-sim"
DATA_AGENT_NAME = "data-agent-fastmon-sim"
PAUSE_REASON = "Brief standby period"
COMPACT_FORMAT = "%Y%m%d%H%M%S%f"  # the DAQ simulator's STF start and end
DAQSIM_RUN_CONDITIONS = {
    "beam_energy": "5 GeV",
    "magnetic_field": "1.5T",
    "detector_config": "physics",
    "bunch_structure": "216x216",
}
# Waits shorter than this are skipped, the STFs sent at once: at thousands per second one wait
# covers a batch, and the schedule (absolute, not cumulative) absorbs each wait's overshoot.
MIN_WAIT_S = 0.002
_PATTERN_BYTES = 1024 * 1024
_RUN_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def stf_filename(run: int, sequence: int) -> str:
    return f"swf.{run}.{sequence:06d}.stf"


def default_first_run() -> int:
    """Tenths of a second since 2025: unique for runs started apart, with no registry to ask."""
    return int((datetime.now(UTC) - _RUN_EPOCH).total_seconds() * 10)


@dataclass(frozen=True)
class Run:
    number: int
    execution_id: str


@dataclass(frozen=True)
class Stf:
    """One STF as announced: when it was taken, and the file behind it when one was written."""

    run: int
    sequence: int
    start: datetime
    end: datetime
    tick: float
    size: int
    checksum: str | None = None
    file_url: str | None = None

    @property
    def filename(self) -> str:
        return stf_filename(self.run, self.sequence)


class MessageShape(Protocol):
    """What one kind of testbed agent sends for each step of a run; ``None``: it sends nothing."""

    def run_id(self, run: int) -> int | str: ...
    def run_imminent(self, run: Run, at: datetime, tick: float) -> Body: ...
    def start_run(self, run: Run, at: datetime, tick: float) -> Body: ...
    def pause_run(self, run: Run, at: datetime, tick: float) -> Body | None: ...
    def resume_run(self, run: Run, at: datetime, tick: float) -> Body | None: ...
    def end_run(self, run: Run, at: datetime, tick: float, total_stf_files: int) -> Body: ...
    def stf_gen(self, run: Run, stf: Stf) -> Body: ...


@dataclass(frozen=True)
class RunnerShape:
    """The workflow runner (swf-testbed ``stf_datataking``): ISO timestamps, integer run_id,
    simulation ticks, pause_run/resume_run around standby, no file information in stf_gen."""

    namespace: str | None = None
    sender: str = RUNNER_NAME

    def run_id(self, run: int) -> int:
        return run

    def _lifecycle(self, msg_type: str, run: Run, at: datetime, tick: float) -> Body:
        return {
            "msg_type": msg_type, "namespace": self.namespace, "sender": self.sender,
            "execution_id": run.execution_id, "run_id": run.number,
            "timestamp": _iso(at), "simulation_tick": tick,
        }  # fmt: skip

    def run_imminent(self, run: Run, at: datetime, tick: float) -> Body:
        return {**self._lifecycle("run_imminent", run, at, tick), **_state("beam", "not_ready")}

    def start_run(self, run: Run, at: datetime, tick: float) -> Body:
        return {**self._lifecycle("start_run", run, at, tick), **_state("run", "physics")}

    def pause_run(self, run: Run, at: datetime, tick: float) -> Body:
        body = {**self._lifecycle("pause_run", run, at, tick), **_state("run", "standby")}
        return {**body, "reason": PAUSE_REASON}

    def resume_run(self, run: Run, at: datetime, tick: float) -> Body:
        return {**self._lifecycle("resume_run", run, at, tick), **_state("run", "physics")}

    def end_run(self, run: Run, at: datetime, tick: float, total_stf_files: int) -> Body:
        return {**self._lifecycle("end_run", run, at, tick), "total_stf_files": total_stf_files}

    def stf_gen(self, run: Run, stf: Stf) -> Body:
        return {
            "msg_type": "stf_gen", "namespace": self.namespace, "sender": self.sender,
            "execution_id": run.execution_id, "run_id": run.number, "filename": stf.filename,
            "sequence": stf.sequence, "timestamp": _iso(stf.start),
            "simulation_tick": stf.tick, **_state("run", "physics"),
        }  # fmt: skip


@dataclass(frozen=True)
class DaqsimShape:
    """The standalone DAQ simulator (swf-daqsim-agent): run_id a digit string, compact
    timestamps, no namespace or sender, stf_gen with start, end, checksum and size, and no
    pause messages (a pause is only a gap in the STFs)."""

    def run_id(self, run: int) -> str:
        return str(run)

    def run_imminent(self, run: Run, at: datetime, tick: float) -> Body:
        return {
            "msg_type": "run_imminent", "req_id": 1, "run_id": self.run_id(run.number),
            "timestamp": at.strftime("%Y%m%d%H%M%S"), "dataset": f"swf.{run.number:06d}.run",
            "run_conditions": DAQSIM_RUN_CONDITIONS,
        }  # fmt: skip

    def start_run(self, run: Run, at: datetime, tick: float) -> Body:
        return self._lifecycle("start_run", run, at)

    def pause_run(self, run: Run, at: datetime, tick: float) -> None:
        return None

    def resume_run(self, run: Run, at: datetime, tick: float) -> None:
        return None

    def end_run(self, run: Run, at: datetime, tick: float, total_stf_files: int) -> Body:
        return self._lifecycle("end_run", run, at)

    def _lifecycle(self, msg_type: str, run: Run, at: datetime) -> Body:
        return {"msg_type": msg_type, "req_id": 1, "run_id": self.run_id(run.number),
                "ts": at.strftime("%Y%m%d%H%M%S")}  # fmt: skip

    def stf_gen(self, run: Run, stf: Stf) -> Body:
        return {
            "msg_type": "stf_gen", "req_id": 1, "run_id": self.run_id(run.number),
            **_state("run", "physics"), "filename": stf.filename,
            "start": stf.start.strftime(COMPACT_FORMAT), "end": stf.end.strftime(COMPACT_FORMAT),
            "checksum": stf.checksum, "size": stf.size,
        }  # fmt: skip


def stf_ready(
    run_id: int | str,
    stf: Stf,
    namespace: str | None = None,
    agent: str = DATA_AGENT_NAME,
    tf_count: int | None = None,
) -> Body:
    """The data agent's notice that an STF is stored (``tf_count`` only when one was chosen)."""
    body = {
        "msg_type": "stf_ready", "namespace": namespace, "sender": agent, "processed_by": agent,
        "filename": stf.filename, "run_id": run_id, "file_url": stf.file_url,
        "checksum": stf.checksum, "size_bytes": stf.size,
        "start": stf.start.strftime(COMPACT_FORMAT), "end": stf.end.strftime(COMPACT_FORMAT),
        **_state("run", "physics"), "sequence": stf.sequence, "simulation_tick": stf.tick,
    }  # fmt: skip
    return body if tf_count is None else {**body, "tf_count": tf_count}


def _iso(moment: datetime) -> str:
    """The runner's ``datetime.now().isoformat()``, always with microseconds (as when nonzero)."""
    return moment.isoformat(timespec="microseconds")


def _state(state: str, substate: str) -> Body:
    return {"state": state, "substate": substate}


# -- STF files -----------------------------------------------------------------------------------


@cache
def _pattern(seed: int) -> bytes:
    """Pseudo-random bytes, twice over, so any rotation of them is one slice."""
    block = random.Random(seed).randbytes(_PATTERN_BYTES)
    return block + block


def zeros_adler32(size: int) -> int:
    """Adler-32 of ``size`` zero bytes (a sparse file), without reading them: A stays 1 and B
    adds 1 per byte."""
    return ((size % 65521) << 16) | 1


def write_stf_file(path: Path, size: int, sparse: bool = False, seed: int = 0) -> str:
    """Write an STF file of ``size`` bytes; return its checksum as the DAQ writes it (``ad:``).

    Sparse: all zeros, no blocks allocated. Otherwise pseudo-random bytes from ``seed``, rotated
    by the file name, so files differ from each other and the same seed gives the same bytes.
    """
    with path.open("wb") as stream:
        if sparse:
            stream.truncate(size)
            return f"ad:{zeros_adler32(size)}"
        offset = zlib.crc32(path.name.encode()) % _PATTERN_BYTES
        chunk = memoryview(_pattern(seed))[offset : offset + _PATTERN_BYTES]
        adler, remaining = 1, size
        while remaining > 0:
            piece = chunk[: min(_PATTERN_BYTES, remaining)]
            stream.write(piece)
            adler = zlib.adler32(piece, adler)
            remaining -= len(piece)
    return f"ad:{adler}"


# -- the simulation ------------------------------------------------------------------------------


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
    stf_size: int = 64 * 1024 * 1024
    sparse: bool = False
    tf_count: int | None = None
    pause_after: int | None = None
    pause_for: float = 5.0
    first_run: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.runs is not None and self.runs < 1, "runs must be at least 1"),
            (self.stfs_per_run < 0, "STFs per run cannot be negative"),
            (not self.rate > 0, "rate must be above 0 STF/s"),
            (self.shape not in ("runner", "daqsim"), "shape must be runner or daqsim"),
            (self.stf_size < 0, "STF size cannot be negative"),
            (self.tf_count is not None and self.tf_count < 1, "tf_count must be at least 1"),
            (self.pause_after is not None and self.pause_after < 1, "pause_after must be >= 1"),
            (self.pause_for < 0, "pause_for cannot be negative"),
            (self.first_run is not None and self.first_run < 0, "run cannot be negative"),
        ]  # fmt: skip
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
            if not self._wait_for_next_stf():
                break
            sequence += 1
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
        end = start + timedelta(seconds=(options.tf_count or DEFAULT_TF_COUNT) * TF_SECONDS)
        stf = Stf(run.number, sequence, start, end, tick, options.stf_size)
        if run_dir is None:
            return stf
        path = run_dir / stf.filename
        checksum = write_stf_file(path, options.stf_size, options.sparse, options.seed)
        return replace(stf, checksum=checksum, file_url=path.as_uri())

    def _announce(self, run: Run, stf: Stf) -> None:
        options = self.options
        self._emit(self.shape.stf_gen(run, stf))
        if options.stf_ready:
            run_id = self.shape.run_id(run.number)
            self._emit(stf_ready(run_id, stf, options.namespace, tf_count=options.tf_count))
        self._stfs += 1

    def _emit(self, body: Body | None) -> None:
        if body is not None:
            self._send(self.options.destination, json.dumps(body))
            self._messages += 1
