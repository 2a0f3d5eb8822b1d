"""``fastmon_tail``'s arithmetic: live events in, per-run totals and recent rates out.

Pure (no database, no terminal) so it is tested on plain dicts. An event is the frame the pages,
the API's ``/events`` and ``fastmon_tail --json`` carry: sequence, kind, run_number, payload,
created_at (ISO 8601). Kinds and fields it does not know are counted or shown as they are, never
fatal: the event stream grows new kinds while old clients keep running.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WINDOW_S = 10.0  # rates are averaged over the last this many seconds
MAX_RUNS = 50  # runs kept in memory; the least recently active is forgotten first
NOTE_CHARS = 160  # a shown payload of an unknown kind is cut here

COLUMNS = ("run", "state", "STFs", "sampled", "TF samples", "volume", "TF/s", "MB/s")


@dataclass
class RunTally:
    """What the events said about one run so far."""

    run_number: int | None
    state: str = ""  # from run events: the run's own state
    stf_state: str = ""  # from STF events: the machine state of the newest STF
    stfs: dict[str, bool] = field(default_factory=dict)  # STF file name -> sampled
    tf_samples: int = 0
    bytes: int = 0
    estimated: bool = False  # some sizes are estimates (the file was not read)
    last_sequence: int = 0
    recent: deque[tuple[float, int, int]] = field(default_factory=deque)  # (time, samples, bytes)

    def forget_before(self, moment: float) -> None:
        while self.recent and self.recent[0][0] <= moment:
            self.recent.popleft()


@dataclass(frozen=True)
class RunRow:
    """One run as shown: totals and rates over the window."""

    run_number: int | None
    state: str
    stfs: int
    sampled_stfs: int
    tf_samples: int
    bytes: int
    estimated: bool
    tf_samples_per_s: float
    bytes_per_s: float
    last_sequence: int

    def cells(self) -> tuple[str, ...]:
        """The row's values as text, in ``COLUMNS`` order."""
        return (
            "-" if self.run_number is None else str(self.run_number),
            self.state or "-",
            str(self.stfs),
            str(self.sampled_stfs),
            str(self.tf_samples),
            ("~" if self.estimated else "") + human_bytes(self.bytes),
            f"{self.tf_samples_per_s:.1f}",
            f"{self.bytes_per_s / 1e6:.1f}",
        )

    def line(self) -> str:
        """The row as one self-describing line, for logs and pipes."""
        run, *rest = self.cells()
        pairs = zip(COLUMNS[1:], rest, strict=True)
        return f"run {run}: " + ", ".join(f"{label} {value}" for label, value in pairs)


class Tally:
    """Per-run totals and rates, fed events in sequence order."""

    def __init__(self, window_s: float = WINDOW_S, max_runs: int = MAX_RUNS) -> None:
        self.window_s = window_s
        self.max_runs = max_runs
        self.runs: dict[int | None, RunTally] = {}
        self.last_sequence = 0
        self.dead_letters = 0
        self.alarms = 0
        self.other: Counter[str] = Counter()  # events of kinds this version does not know

    def add(self, event: Mapping[str, Any]) -> None:
        sequence = _int(event.get("sequence"))
        self.last_sequence = max(self.last_sequence, sequence)
        kind = event.get("kind")
        payload = _mapping(event.get("payload"))
        if kind == "dead_letter":
            self.dead_letters += 1
        elif kind == "alarm":
            self.alarms += 1
        elif kind in ("run", "stf", "tf_samples"):
            run_number = event.get("run_number")
            if run_number is None and kind == "run":
                run_number = payload.get("run_number")
            run = self._run(run_number if isinstance(run_number, int) else None)
            run.last_sequence = max(run.last_sequence, sequence)
            if kind == "run":
                run.state = _state(payload)
            elif kind == "stf":
                self._add_stfs(run, payload)
            else:
                self._add_samples(run, payload, _timestamp(event.get("created_at")))
        else:
            self.other[str(kind)] += 1

    def rows(self, now: float) -> list[RunRow]:
        """Runs, highest number first, with rates over the window ending ``now`` (Unix time)."""
        rows = []
        for run in self.runs.values():
            run.forget_before(now - self.window_s)
            rows.append(
                RunRow(
                    run_number=run.run_number,
                    state=run.state or run.stf_state,
                    stfs=len(run.stfs),
                    sampled_stfs=sum(run.stfs.values()),
                    tf_samples=run.tf_samples,
                    bytes=run.bytes,
                    estimated=run.estimated,
                    tf_samples_per_s=sum(n for _, n, _ in run.recent) / self.window_s,
                    bytes_per_s=sum(b for _, _, b in run.recent) / self.window_s,
                    last_sequence=run.last_sequence,
                )
            )
        return sorted(rows, key=lambda row: (row.run_number is None, -(row.run_number or 0)))

    def summary(self) -> str:
        """The counts that have no run: dead letters, alarms, kinds not known here."""
        parts = [f"sequence {self.last_sequence}", f"dead letters {self.dead_letters}"]
        parts.append(f"alarms {self.alarms}")
        parts += [f"{kind} {n}" for kind, n in sorted(self.other.items())]
        return ", ".join(parts)

    def _run(self, run_number: int | None) -> RunTally:
        run = self.runs.get(run_number)
        if run is None:
            if len(self.runs) >= self.max_runs:
                stalest = min(self.runs.values(), key=lambda r: r.last_sequence)
                del self.runs[stalest.run_number]
            run = self.runs[run_number] = RunTally(run_number)
        return run

    @staticmethod
    def _add_stfs(run: RunTally, payload: Mapping[str, Any]) -> None:
        for stf in _mappings(payload.get("stfs")):
            name = stf.get("stf_filename")
            if isinstance(name, str):
                run.stfs.setdefault(name, False)
            run.stf_state = _state(stf) or run.stf_state

    def _add_samples(
        self, run: RunTally, payload: Mapping[str, Any], created: float | None
    ) -> None:
        name = payload.get("stf_filename")
        if isinstance(name, str):
            run.stfs[name] = True
        samples = list(_mappings(payload.get("samples")))
        size = sum(_int(sample.get("file_size_bytes")) for sample in samples)
        run.tf_samples += len(samples)
        run.bytes += size
        run.estimated = run.estimated or any(s.get("size_estimated") is True for s in samples)
        if created is not None:
            run.recent.append((created, len(samples), size))
            run.forget_before(created - self.window_s)


def describe(event: Mapping[str, Any]) -> str | None:
    """A line for an event worth seeing on its own (a run changing state, a dead letter, an
    alarm, a kind not known here); None for the STF and sample traffic the table counts."""
    kind = event.get("kind")
    payload = _mapping(event.get("payload"))
    head = f"#{event.get('sequence')}"
    if kind in ("stf", "tf_samples"):
        return None
    if kind == "run":
        run_number = event.get("run_number") or payload.get("run_number")
        return f"{head} run {run_number}: {payload.get('msg_type', 'state')} -> {_state(payload)}"
    if kind == "dead_letter":
        return (
            f"{head} dead letter {payload.get('id', '?')} ({payload.get('msg_type') or '-'}): "
            f"{payload.get('reason_code', '?')}: {payload.get('reason', '')}"
        )
    if kind == "alarm":
        return f"{head} ALARM {payload.get('severity', '?')}: {payload.get('message', '')}"
    shown = json.dumps(event.get("payload"), default=str)
    if len(shown) > NOTE_CHARS:
        shown = shown[: NOTE_CHARS - 3] + "..."
    return f"{head} {kind} run {event.get('run_number')}: {shown}"


def table(rows: Iterable[RunRow]) -> list[str]:
    """Rows as aligned text columns under ``COLUMNS``; run and state left, numbers right."""
    lines = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]


def human_bytes(size: float) -> str:
    """Decimal units, as MB/s: 1.5 GB is 1.5e9 bytes."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    power = 0
    while abs(size) >= 1000 and power < len(units) - 1:
        size /= 1000
        power += 1
    return f"{size:.0f} B" if power == 0 else f"{size:.1f} {units[power]}"


def _state(payload: Mapping[str, Any]) -> str:
    parts = [str(payload[key]) for key in ("state", "substate") if payload.get(key)]
    return "/".join(parts)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any) -> Iterable[Mapping[str, Any]]:
    return (item for item in value if isinstance(item, Mapping)) if isinstance(value, list) else ()


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
