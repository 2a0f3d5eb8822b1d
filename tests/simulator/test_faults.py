"""Faults the simulator injects: a gap, a duplicate, an oversize STF, a stall, a slow stretch;
and the fault specs it refuses."""

from __future__ import annotations

import json
import time

import pytest

from fastmon.simulator.player import SimulationOptions, Simulator
from fastmon.testing.messages import msg_types


def test_faults_a_gap_a_duplicate_an_oversize_stf_a_stall_and_a_slow_stretch() -> None:
    from fastmon.simulator.faults import parse_fault

    sent: list[tuple[float, dict]] = []
    texts = ["gap@2", "duplicate@3", "oversize@4:10", "stall@5:0.3", "slow@6:0.5"]
    faults = tuple(parse_fault(text) for text in texts)
    options = SimulationOptions(stfs_per_run=7, rate=20, stf_size=1000, faults=faults)
    Simulator(options, lambda _, body: sent.append((time.monotonic(), json.loads(body)))).run()
    gens = [(t, body) for t, body in sent if body["msg_type"] == "stf_gen"]
    assert [body["sequence"] for _, body in gens] == [1, 3, 3, 4, 5, 6, 7]  # 2 missing, 3 twice
    sizes = {b["sequence"]: b["size_bytes"] for _, b in sent if b["msg_type"] == "stf_ready"}
    assert (sizes[3], sizes[4]) == (1000, 10_000)  # announced ten times its size
    times = {body["sequence"]: t for t, body in gens}
    assert times[5] - times[4] >= 0.3  # the stall, still running: no pause_run
    assert times[6] - times[5] >= 1 / 10 - 0.01  # half the rate
    assert "pause_run" not in msg_types(body for _, body in sent)
    assert sent[-1][1]["total_stf_files"] == 7  # the DAQ counted the STF it never announced


@pytest.mark.parametrize("text", ["gap", "gap@0", "gap@3:2", "stall@2:-1", "melt@2", "slow@x"])
def test_faults_are_checked(text: str) -> None:
    from fastmon.simulator.faults import parse_fault

    with pytest.raises(ValueError, match="fault"):
        parse_fault(text)
