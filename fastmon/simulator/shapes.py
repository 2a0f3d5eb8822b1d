"""The testbed's messages for each step of a run, in the two shapes agents send them: the
workflow runner's (``RunnerShape``) and the standalone DAQ simulator's (``DaqsimShape``), and
the data agent's ``stf_ready``. Pure Python, no Django."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
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
    # Each TF's byte offset, then where the TFs end (an ETF1 file's index): announced in
    # stf_ready as fastmon's extension ``tf_offsets``, with the ``tf_count`` they make.
    tf_offsets: tuple[int, ...] | None = None

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
    """The data agent's notice that an STF is stored: ``tf_count`` only when one was chosen or
    the STF has ``tf_offsets`` (then it is theirs, ``len(tf_offsets) - 1``, and they follow)."""
    body = {
        "msg_type": "stf_ready", "namespace": namespace, "sender": agent, "processed_by": agent,
        "filename": stf.filename, "run_id": run_id, "file_url": stf.file_url,
        "checksum": stf.checksum, "size_bytes": stf.size,
        "start": stf.start.strftime(COMPACT_FORMAT), "end": stf.end.strftime(COMPACT_FORMAT),
        **_state("run", "physics"), "sequence": stf.sequence, "simulation_tick": stf.tick,
    }  # fmt: skip
    if stf.tf_offsets is not None:
        written = len(stf.tf_offsets) - 1
        if tf_count not in (None, written):
            raise ValueError(f"tf_count {tf_count} is not the {written} TFs of the offsets")
        return {**body, "tf_count": written, "tf_offsets": list(stf.tf_offsets)}
    return body if tf_count is None else {**body, "tf_count": tf_count}


def _iso(moment: datetime) -> str:
    """The runner's ``datetime.now().isoformat()``, always with microseconds (as when nonzero)."""
    return moment.isoformat(timespec="microseconds")


def _state(state: str, substate: str) -> Body:
    return {"state": state, "substate": substate}
