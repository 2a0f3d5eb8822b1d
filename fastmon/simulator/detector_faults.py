"""Detector faults the simulator writes into its ETF1 content, so the content checks and the
dashboard see what a sick detector looks like, from STF N of every run on (``@N-M``: STFs N to
M only): ``hot_channel@N:DET[:SOURCE[:CHANNEL]]`` (a channel at about 50 times the
detector's mean hits per channel), ``dead_channel@N:DET[:SOURCE[:CHANNEL]]`` and
``dead_source@N:DET[:SOURCE]`` (no hits at all), ``gain@N:DET:FACTOR`` (ADC scaled),
``noise@N:DET:RATE`` (extra hits per source per TF, flat over the channels) and
``corrupt@N[:FRACTION]`` (that fraction of the TFs corrupt, the index still sound). SOURCE is a
source id of DET (default its middle source), CHANNEL one of that source's (default 7)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fastmon.content.detectors import Detector, DetectorMap

SYNTAX = {
    "hot_channel": "hot_channel@N[-M]:DET[:SOURCE[:CHANNEL]]",
    "dead_channel": "dead_channel@N[-M]:DET[:SOURCE[:CHANNEL]]",
    "dead_source": "dead_source@N[-M]:DET[:SOURCE]",
    "gain": "gain@N[-M]:DET:FACTOR",
    "noise": "noise@N[-M]:DET:RATE",
    "corrupt": "corrupt@N[-M][:FRACTION]",
}
DETECTOR_KINDS = tuple(SYNTAX)
# What follows the detector: (fewest, most) parts; a value's kind takes exactly one.
_EXTRA_PARTS = {"hot_channel": (0, 2), "dead_channel": (0, 2), "dead_source": (0, 1),
                "gain": (1, 1), "noise": (1, 1)}  # fmt: skip
DEFAULT_CHANNEL = 7  # or a source's last channel, when it has fewer
DEFAULT_FRACTION = 0.05
# A hot channel: this many times the detector's mean hits per channel per TF, at least HOT_MIN.
HOT_FACTOR, HOT_MIN = 50.0, 4.0
NEEDS_ETF1 = "detector faults are written into ETF1 content: not with random content or sparse"


@dataclass(frozen=True)
class DetectorFault:
    """One detector fault, from STF ``sequence`` to ``last`` (None: the run's end). ``source``
    and ``channel`` None: the defaults of the map the file is written over."""

    kind: str
    sequence: int
    last: int | None = None
    detector: str = ""  # none for corrupt
    source: int | None = None
    channel: int | None = None
    value: float | None = None  # gain's factor, noise's rate, corrupt's fraction
    spec: str = field(default="", compare=False)  # as given, for messages

    def active(self, n: int) -> bool:
        return self.sequence <= n and (self.last is None or n <= self.last)


def parse_detector_fault(text: str, detectors: DetectorMap) -> DetectorFault:
    """A detector fault's spec, refused with a clear message (its detector, source and channel
    checked against ``detectors``, the map the files are written over)."""
    kind, _, rest = text.partition("@")
    span, *parts = rest.split(":")
    usage = f"fault {text!r}: write {SYNTAX[kind]}"
    fewest, most = _EXTRA_PARTS.get(kind, (0, 0))
    numbers: list[str]
    if kind == "corrupt":
        detector, numbers, values = "", [], parts
    elif not parts or not fewest <= len(parts) - 1 <= most:
        raise ValueError(usage)
    elif kind in ("gain", "noise"):
        detector, numbers, values = parts[0], [], parts[1:]
    else:
        detector, numbers, values = parts[0], parts[1:], []
    if len(values) > 1:
        raise ValueError(usage)
    try:
        first, _, last = span.partition("-")
        sequence, end = int(first), int(last) if last else None
        source, channel = (*(int(n) for n in numbers), None, None)[:2]
        value = float(values[0]) if values else (DEFAULT_FRACTION if kind == "corrupt" else None)
    except ValueError:
        raise ValueError(usage) from None
    fault = DetectorFault(kind, sequence, end, detector, source, channel, value, text)
    if problem := fault_problem(fault, detectors):
        raise ValueError(problem)
    return fault


def fault_problem(fault: DetectorFault, detectors: DetectorMap) -> str | None:
    """What is wrong with ``fault`` over ``detectors``, or None."""
    name, value = f"fault {fault.spec or fault.kind!r}", fault.value
    if fault.sequence < 0:
        return f"{name}: N must be 0 or more (0 and 1: from the first STF)"
    if fault.last is not None and fault.last < fault.sequence:
        return f"{name}: N-M must have M at least N"
    if value is not None and not (math.isfinite(value) and value > 0):
        return f"{name}: the value must be above 0"
    if fault.kind == "corrupt":
        return f"{name}: FRACTION must be at most 1" if value is not None and value > 1 else None
    found = {d.name: d for d in detectors}.get(fault.detector)
    if found is None:
        names = ", ".join(d.name for d in detectors)
        return f"{name}: no detector {fault.detector!r} in the map ({names})"
    if fault.source is not None and not found.first_source <= fault.source <= found.last_source:
        return (f"{name}: source {fault.source} is not {found.name}'s "
                f"({found.first_source}-{found.last_source})")  # fmt: skip
    if fault.channel is not None and not 0 <= fault.channel < found.channels:
        last = found.channels - 1
        return f"{name}: channel {fault.channel} is not one of {found.name}'s (0-{last})"
    return None


def source_of(fault: DetectorFault, detector: Detector) -> int:
    """The fault's source: given, or the detector's middle one."""
    middle = detector.first_source + detector.n_sources // 2
    return middle if fault.source is None else fault.source


def channel_of(fault: DetectorFault, detector: Detector) -> int:
    return min(DEFAULT_CHANNEL, detector.channels - 1) if fault.channel is None else fault.channel


def noise_rate(faults: Sequence[DetectorFault], detector: Detector) -> float:
    """Extra hits per source per TF of ``detector`` (the writer scales its other hits down
    by them, so the file stays near its size)."""
    return sum(f.value or 0.0 for f in faults if f.kind == "noise" and f.detector == detector.name)


Draw = Callable[[Detector, int], np.ndarray]  # n hits (etf1.HIT) of the detector's spectra


class Damage:
    """The detector faults of one STF, done to its hits as they are drawn, with numpy (no
    per-hit Python) and a generator of their own, so the rest of the content is unchanged.

    ``rates``: each detector's hits per source per TF; ``draw``: hits of a detector's ADC and
    bunch-crossing spectra from that generator."""

    def __init__(self, faults: Sequence[DetectorFault], *, tf_count: int,
                 rates: Mapping[str, float], rng: np.random.Generator, draw: Draw,
                 adc_max: int) -> None:  # fmt: skip
        self.faults, self.rates, self.rng, self.draw = faults, rates, rng, draw
        self.adc_max = adc_max
        fraction = max((f.value or 0.0 for f in faults if f.kind == "corrupt"), default=0.0)
        broken = max(1, round(fraction * tf_count)) if fraction else 0
        self.corrupt = np.sort(rng.choice(tf_count, min(broken, tf_count), replace=False))

    def corrupt_in(self, first: int, n: int) -> list[int]:
        """The TFs ``first`` .. ``first + n - 1`` to make corrupt, as indices in the batch."""
        chosen = self.corrupt[(self.corrupt >= first) & (self.corrupt < first + n)]
        return (chosen - first).tolist()

    def _of(self, detector: Detector, kind: str) -> list[DetectorFault]:
        return [f for f in self.faults if f.kind == kind and f.detector == detector.name]

    def apply(self, detector: Detector, cells: np.ndarray,
              hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """``hits`` of ``detector``'s (TF, source) ``cells`` (their counts, TF x source, the hits
        in that order) with the faults done: the new counts, and the hits in the same order."""
        n, k = cells.shape
        cell = np.repeat(np.arange(n * k), cells.ravel())
        parts = [(cell, hits)]
        for fault in self._of(detector, "hot_channel"):
            rate = max(HOT_FACTOR * self.rates[detector.name] / detector.channels, HOT_MIN)
            column = source_of(fault, detector) - detector.first_source
            where = np.arange(n) * k + column
            parts.append(self._extra(detector, where, self.rng.poisson(rate, (n,)),
                                     channel_of(fault, detector)))  # fmt: skip
        for fault in self._of(detector, "noise"):
            count = self.rng.poisson(fault.value or 0.0, (n * k,))
            parts.append(self._extra(detector, np.arange(n * k), count, None))
        if len(parts) > 1:
            cell = np.concatenate([c for c, _ in parts])
            order = np.argsort(cell, kind="stable")
            cell, hits = cell[order], np.concatenate([h for _, h in parts])[order]
        for fault in self._of(detector, "gain"):
            scaled = np.rint(hits["adc"] * (fault.value or 1.0))
            hits["adc"] = np.minimum(scaled, self.adc_max)
        dead = np.zeros(len(hits), dtype=bool)
        for fault in self._of(detector, "dead_source") + self._of(detector, "dead_channel"):
            here = cell % k == source_of(fault, detector) - detector.first_source
            if fault.kind == "dead_channel":
                here &= hits["channel"] == channel_of(fault, detector)
            dead |= here
        if dead.any():
            cell, hits = cell[~dead], hits[~dead]
        return np.bincount(cell, minlength=n * k).reshape(n, k), hits

    def _extra(self, detector: Detector, cells: np.ndarray, count: np.ndarray,
               channel: int | None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """``count`` more hits in each of ``cells``, on ``channel`` (None: any, flat)."""
        hits = self.draw(detector, int(count.sum()))
        hits["channel"] = (self.rng.integers(0, detector.channels, len(hits))
                           if channel is None else channel)  # fmt: skip
        return np.repeat(cells, count), hits
