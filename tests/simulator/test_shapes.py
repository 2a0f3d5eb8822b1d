"""The testbed's message shapes: the runner's and the DAQ simulator's bodies, and the data agent's
``stf_ready``, byte for byte the spec's examples."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from fastmon.simulator.shapes import DaqsimShape, Run, RunnerShape, Stf, stf_ready
from fastmon.testing.messages import example, example_body

RUNNER = "workflow_runner-agent-daq-7"
COMPACT = "%Y%m%d%H%M%S%f"
EXAMPLE_RUN = Run(101993, "stf_datataking-daq-0049")


def at(text: str, layout: str = "%Y-%m-%dT%H:%M:%S.%f") -> datetime:
    return datetime.strptime(text, layout)


@pytest.mark.parametrize("msg_type", ["run_imminent", "start_run", "pause_run"])
def test_runner_lifecycle_bodies_are_the_spec_examples_byte_for_byte(msg_type: str) -> None:
    spec = example(msg_type)
    build = getattr(RunnerShape("epic-fastmon", RUNNER), msg_type)
    body = build(EXAMPLE_RUN, at(spec["timestamp"]), spec["simulation_tick"])
    assert json.dumps(body) == example_body(msg_type).strip()


def test_runner_end_run_and_stf_gen_are_the_spec_examples_byte_for_byte() -> None:
    shape = RunnerShape("epic-fastmon", RUNNER)
    end = example("end_run")
    body = shape.end_run(EXAMPLE_RUN, at(end["timestamp"]), 154.1, 42)
    assert json.dumps(body) == example_body("end_run").strip()
    gen = example("stf_gen")
    stf = Stf(101993, 1, at(gen["timestamp"]), at(gen["timestamp"]), 15.3, 0)
    assert json.dumps(shape.stf_gen(EXAMPLE_RUN, stf)) == example_body("stf_gen").strip()


def test_resume_run_is_start_run_under_its_own_name() -> None:
    shape, moment = RunnerShape("epic-fastmon", RUNNER), datetime(2026, 11, 20, 14, 4, 6)
    resume = shape.resume_run(EXAMPLE_RUN, moment, 60.0)
    assert resume == {**shape.start_run(EXAMPLE_RUN, moment, 60.0), "msg_type": "resume_run"}


def test_daqsim_stf_gen_and_stf_ready_are_the_spec_examples_byte_for_byte() -> None:
    daqsim = example("stf_gen_daqsim")
    start, end = at(daqsim["start"], COMPACT), at(daqsim["end"], COMPACT)
    stf = Stf(101993, 2, start, end, 0.0, daqsim["size"], daqsim["checksum"])
    assert (
        json.dumps(DaqsimShape().stf_gen(EXAMPLE_RUN, stf))
        == example_body("stf_gen_daqsim").strip()
    )
    ready = example("stf_ready")
    start, end = at(ready["start"], COMPACT), at(ready["end"], COMPACT)
    stf = Stf(
        101993, 1, start, end, 15.3, ready["size_bytes"], ready["checksum"], ready["file_url"]
    )
    body = stf_ready(101993, stf, "epic-fastmon", "data-agent-daq-3")
    assert json.dumps(body) == example_body("stf_ready").strip()
    assert stf_ready(101993, stf, tf_count=500)["tf_count"] == 500


def test_stf_ready_carries_the_tf_offsets_of_its_stf_and_the_tf_count_they_make() -> None:
    ready = example("stf_ready")
    start, end = at(ready["start"], COMPACT), at(ready["end"], COMPACT)
    stf = Stf(101993, 1, start, end, 15.3, 4096, "ad:1", "file:///x", tf_offsets=(0, 32, 64, 96))
    body = stf_ready(101993, stf)
    assert list(body)[-2:] == ["tf_count", "tf_offsets"]
    assert (body["tf_count"], body["tf_offsets"]) == (3, [0, 32, 64, 96])
    assert stf_ready(101993, stf, tf_count=3) == body
    with pytest.raises(ValueError, match="tf_count 5"):
        stf_ready(101993, stf, tf_count=5)
