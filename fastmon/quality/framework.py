"""What a check is and what it is given.

A check is a small class named by dotted path in ``FASTMON["CHECKS"]`` with its parameters. It
keeps what it needs of a run in ``memory`` (a dict stored as JSON between evaluations), so a new
batch costs what it adds, never a rescan of the run. Each hook returns a ``Verdict``, or None
to keep the current one:

- ``on_stfs``: STF announcements just stored (per ingest batch);
- ``on_samples``: TF samples just stored;
- ``on_tick``: a time window went by (``CHECK_INTERVAL_S``), for what absence reveals;
- ``on_content``: a content cycle merged the run's histograms (``ContentSeen``: the whole
  run, its moving window, the cycle's delta and the references by detector), so checks judge
  what is inside the TFs at the merger's pace, never per sample;
- ``on_end``: the run ended.

Hooks must be cheap and deterministic: they run inside the transaction that stores what they
look at, and a retried transaction runs them again from the stored memory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.module_loading import import_string

from fastmon.conf import fastmon_settings
from fastmon.content.detectors import DetectorMap
from fastmon.content.histograms import Content
from fastmon.quality.verdicts import Quality, Verdict


@dataclass(frozen=True)
class RunFacts:
    """A run as checks see it."""

    number: int
    state: str
    substate: str
    state_since: datetime | None  # when fastmon saw its state change (fastmon's clock)
    total_stf_files: int | None
    state_changed_at: datetime | None = None  # the same change by the DAQ's clock


@dataclass(frozen=True)
class StfSeen:
    """One STF announcement just stored: ``new`` on the STF's first, ``repeated`` when the
    same kind of announcement of the same STF came before (the broker's redeliveries aside);
    ``size_bytes`` when it is the first to give the STF's size (an stf_ready after an
    stf_gen without one). ``at`` is when fastmon received it, ``daq_at`` when the DAQ made it
    (its end, else its start, else its announcement's timestamp: a backlog drained after an
    outage keeps its own times)."""

    filename: str
    sequence: int | None
    size_bytes: int | None
    at: datetime
    new: bool
    repeated: bool = False
    daq_at: datetime | None = None


@dataclass(frozen=True)
class SampleSeen:
    """One TF sample just stored, with its STF's latency from announcement to sample, and the
    checksums its own is compared with (the range read again, the TFs' announced ones)."""

    tf_filename: str
    latency_s: float | None
    checksum: str = ""
    compared_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class Window:
    """What a tick gives beyond the time: counts the database answers for a recent window, and
    whether fastmon hears the broker (while it does not, silence is not the DAQ's)."""

    dead_letters_since: Callable[[datetime], int]
    # Fast processing: a run's slice results since then, by status ("done", "failed").
    slice_results_since: Callable[[int, datetime], Mapping[str, int]] = lambda run, since: {}
    # Dead letters since then that name this run (by number) or name none.
    run_dead_letters_since: Callable[[int, datetime], int] = lambda run, since: 0
    connected: bool = True  # run_fastmon's consumer is connected to the broker
    connected_since: datetime | None = None  # ... since then (None: not known)


@dataclass(frozen=True)
class ContentSeen:
    """A run's content as of the cycle just merged, read once for every check: ``whole`` (the
    run), ``window`` (its last CONTENT_WINDOW_CYCLES cycles, where a fault that ended stops
    showing), ``delta`` (this cycle alone), the references by detector, and the map."""

    whole: Content
    window: Content
    delta: Content
    references: Mapping[str, Content]
    detectors: DetectorMap


class Check:
    """A data-quality check. Subclasses declare their parameters as class attributes with
    defaults; ``FASTMON["CHECKS"]`` may override any of them and nothing else."""

    name: str = ""  # a subclass's default; an instance's own, when given one
    quality: str = Quality.BAD  # what the check says when its condition is met

    def __init__(self, name: str | None = None, **params: Any) -> None:
        for key, value in params.items():
            if (
                key.startswith("_")
                or not hasattr(type(self), key)
                or callable(getattr(type(self), key))
            ):
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}")
            setattr(self, key, value)
        self.name = name or self.name or type(self).__name__
        Quality(self.quality)  # a typo fails at start-up, not at the first fault

    def on_stfs(self, memory: dict, run: RunFacts, stfs: Sequence[StfSeen]) -> Verdict | None:
        return None

    def on_samples(
        self, memory: dict, run: RunFacts, samples: Sequence[SampleSeen]
    ) -> Verdict | None:
        return None

    def on_tick(self, memory: dict, run: RunFacts, now: datetime, window: Window) -> Verdict | None:
        return None

    def on_content(self, memory: dict, run: RunFacts, content: ContentSeen) -> Verdict | None:
        return None

    def on_end(self, memory: dict, run: RunFacts) -> Verdict | None:
        return None

    def says(self, reason: str) -> Verdict:
        """The check's quality when its condition is met."""
        return Verdict(Quality(self.quality), reason)


def configured_checks(entries: Sequence[Mapping[str, Any]] | None = None) -> list[Check]:
    """The checks ``FASTMON["CHECKS"]`` names, made once per distinct setting."""
    entries = fastmon_settings.CHECKS if entries is None else entries
    key = repr(entries)
    if key not in _made:
        _made[key] = _make(entries)
    return list(_made[key])


_made: dict[str, tuple[Check, ...]] = {}


def _make(entries: Sequence[Mapping[str, Any]]) -> tuple[Check, ...]:
    checks = []
    for entry in entries:
        params = dict(entry)
        path = params.pop("class", None)
        if not path:
            raise ValueError(f"a CHECKS entry needs a 'class': {entry!r}")
        checks.append(import_string(path)(**params))
    names = [check.name for check in checks]
    if len(set(names)) != len(names):
        raise ValueError(f"two CHECKS have the same name: {names}")
    return tuple(checks)
