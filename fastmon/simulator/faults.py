"""Faults the simulator can inject, so a demo run goes bad and recovers as a real one would:
``gap@N`` (STF N never announced), ``duplicate@N`` (its stf_gen sent twice), ``stall@N:S``
(S seconds of silence before STF N, still running), ``slow@N:F`` (STFs N to N+9 at F times the
rate), ``oversize@N:X`` (STF N announced X times its size). And the detector faults written into
the ETF1 content (``detector_faults``: hot_channel, dead_channel, dead_source, gain, noise,
corrupt)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastmon.content.detectors import DetectorMap
from fastmon.simulator.content import default_detectors
from fastmon.simulator.detector_faults import DETECTOR_KINDS, DetectorFault, parse_detector_fault

KINDS = {"gap": None, "duplicate": None, "stall": 30.0, "slow": 0.2, "oversize": 10.0}
SLOW_STFS = 10


@dataclass(frozen=True)
class Fault:
    kind: str
    sequence: int
    value: float | None = None


AnyFault = Fault | DetectorFault


def parse_fault(text: str, detectors: DetectorMap | None = None) -> AnyFault:
    """``kind@N[:value]``, or a detector fault's spec checked against ``detectors`` (the map the
    files are written over; the testbed's by default), refused with a clear message."""
    kind, _, rest = text.partition("@")
    if kind in DETECTOR_KINDS:
        return parse_detector_fault(text, default_detectors() if detectors is None else detectors)
    number, _, value = rest.partition(":")
    if kind not in KINDS:
        raise ValueError(
            f"fault {text!r}: kind must be one of {', '.join([*KINDS, *DETECTOR_KINDS])}"
        )
    try:
        sequence = int(number)
        amount = float(value) if value else KINDS[kind]
    except ValueError:
        raise ValueError(f"fault {text!r}: write kind@N or kind@N:value") from None
    if sequence < 1 or (amount is not None and not amount > 0):
        raise ValueError(f"fault {text!r}: N must be at least 1 and the value above 0")
    if KINDS[kind] is None and value:
        raise ValueError(f"fault {text!r}: {kind} takes no value")
    return Fault(kind, sequence, amount)


class Faults:
    """What the faults do to STF ``n`` of each run."""

    def __init__(self, faults: Iterable[AnyFault] = ()) -> None:
        given = tuple(faults)
        self.faults = tuple(f for f in given if isinstance(f, Fault))
        self.detector = tuple(f for f in given if isinstance(f, DetectorFault))

    def detector_faults(self, n: int) -> tuple[DetectorFault, ...]:
        """Those written into STF ``n``'s content."""
        return tuple(f for f in self.detector if f.active(n))

    def _value(self, kind: str, n: int, default: float) -> float:
        for fault in self.faults:
            if fault.kind == kind and fault.sequence == n and fault.value is not None:
                return fault.value
        return default

    def _has(self, kind: str, n: int) -> bool:
        return any(f.kind == kind and f.sequence == n for f in self.faults)

    def skipped(self, n: int) -> bool:
        return self._has("gap", n)

    def repeated(self, n: int) -> bool:
        return self._has("duplicate", n)

    def stall_before(self, n: int) -> float:
        return self._value("stall", n, 0.0)

    def rate_factor(self, n: int) -> float:
        for fault in self.faults:
            if fault.kind == "slow" and fault.sequence <= n < fault.sequence + SLOW_STFS:
                return fault.value or 1.0
        return 1.0

    def size_factor(self, n: int) -> float:
        return self._value("oversize", n, 1.0)
