"""fastmon_simulate: the testbed's message shapes, readable STF files, pacing, and the command
against the real ActiveMQ (count, order, a clean stop on SIGINT)."""

from __future__ import annotations

import json
import signal
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fastmon.inbound.schema import decode_body, validate_message
from fastmon.sampling.reading import local_path, read_tf_ranges
from fastmon.sampling.spans import tf_offset
from fastmon.simulator.files import write_stf_file, zeros_adler32
from fastmon.simulator.player import SimulationOptions, Simulator
from fastmon.simulator.sending import byte_size
from fastmon.simulator.shapes import MIN_WAIT_S, DaqsimShape, Run, RunnerShape, Stf, stf_ready
from fastmon.testing.broker import subscribed
from fastmon.testing.messages import example, example_body
from tests.conftest import ServiceProcess, broker_login, wait_until

FAST = 1e6  # STFs per second: no waiting, for tests of the sequence alone
RUNNER = "workflow_runner-agent-daq-7"
COMPACT = "%Y%m%d%H%M%S%f"
EXAMPLE_RUN = Run(101993, "stf_datataking-daq-0049")


def play(**options: Any) -> list[dict[str, Any]]:
    """Every body one simulation sends, in order, each checked to parse as fastmon parses it."""
    sent: list[dict[str, Any]] = []

    def send(destination: str, body: str) -> None:
        assert destination == "/topic/epictopic"
        validate_message(decode_body(body, 1 << 20))
        sent.append(json.loads(body))

    Simulator(SimulationOptions(**{"rate": FAST, **options}), send).run()
    return sent


def types(bodies: list[dict[str, Any]]) -> list[str]:
    return [body["msg_type"] for body in bodies]


def at(text: str, layout: str = "%Y-%m-%dT%H:%M:%S.%f") -> datetime:
    return datetime.strptime(text, layout)


# -- the bodies, against the spec's examples --------------------------------------------------


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


# -- the sequence of a run ---------------------------------------------------------------------


def assert_like_example(body: dict[str, Any], name: str, run_id_type: type = int) -> None:
    """Same keys, in the same order, and the same types as the spec's example."""
    spec = example(name)
    assert list(body) == list(spec), name
    for key, value in spec.items():
        expected = run_id_type if key == "run_id" else type(value)
        assert isinstance(body[key], expected), f"{name}.{key}: {body[key]!r}"


def test_runner_run_in_order_with_bodies_shaped_as_the_examples(tmp_path: Path) -> None:
    bodies = play(runs=2, stfs_per_run=3, namespace="epic-fastmon", first_run=100010,
                  data_dir=tmp_path, stf_size=4096)  # fmt: skip
    one_run = ["run_imminent", "start_run", *["stf_gen", "stf_ready"] * 3, "end_run"]
    assert types(bodies) == one_run * 2
    for body in bodies:
        name = body["msg_type"]
        assert_like_example(body, name)
        assert body["namespace"] == "epic-fastmon"
    assert [b["run_id"] for b in bodies] == [100010] * 9 + [100011] * 9
    gens = [b for b in bodies if b["msg_type"] == "stf_gen"]
    assert [g["sequence"] for g in gens] == [1, 2, 3] * 2
    assert gens[0]["filename"] == "swf.100010.000001.stf"
    assert {b.get("execution_id", "-") for b in bodies[:9]} == {"stf_datataking-sim-100010", "-"}
    assert bodies[8]["total_stf_files"] == 3
    ticks = [b["simulation_tick"] for b in bodies[:9]]
    assert ticks == sorted(ticks)


def test_daqsim_run_in_order_with_string_run_ids(tmp_path: Path) -> None:
    bodies = play(shape="daqsim", stfs_per_run=2, first_run=100010, data_dir=tmp_path,
                  stf_size=4096, pause_after=1, pause_for=0, namespace="epic-fastmon")  # fmt: skip
    assert types(bodies) == ["run_imminent", "start_run", "stf_gen", "stf_ready", "stf_gen",
                             "stf_ready", "end_run"]  # fmt: skip
    assert {b["run_id"] for b in bodies} == {"100010"}
    for body in bodies:
        if body["msg_type"] != "stf_ready":  # the data agent's, not the DAQ simulator's
            assert "namespace" not in body and "sender" not in body
    assert_like_example(bodies[2], "stf_gen_daqsim", str)
    assert_like_example(bodies[3], "stf_ready", str)
    assert bodies[2]["checksum"] == bodies[3]["checksum"]
    assert bodies[2]["size"] == bodies[3]["size_bytes"] == 4096
    assert bodies[0]["run_conditions"]["beam_energy"]
    assert bodies[0]["timestamp"].isdigit() and bodies[1]["ts"].isdigit()


def test_without_files_nothing_is_written_and_no_checksum_is_claimed() -> None:
    bodies = play(stfs_per_run=1, stf_size=2 * 1024**3)
    ready = bodies[3]
    assert (ready["file_url"], ready["checksum"], ready["size_bytes"]) == (None, None, 2 * 1024**3)
    assert "tf_count" not in ready


def test_stf_ready_can_be_left_to_a_real_data_agent() -> None:
    assert types(play(stfs_per_run=2, stf_ready=False)) == [
        "run_imminent", "start_run", "stf_gen", "stf_gen", "end_run"
    ]  # fmt: skip


def test_runner_pauses_after_every_n_stfs_but_not_after_the_last() -> None:
    sent: list[tuple[float, str]] = []
    options = SimulationOptions(stfs_per_run=5, rate=FAST, pause_after=2, pause_for=0.2)
    Simulator(options, lambda _, body: sent.append((time.monotonic(), body))).run()
    bodies = [json.loads(body) for _, body in sent]
    stfs = ["stf_gen", "stf_ready"]
    standby = ["pause_run", "resume_run"]
    assert types(bodies) == ["run_imminent", "start_run", *stfs * 2, *standby, *stfs * 2,
                             *standby, *stfs, "end_run"]  # fmt: skip
    pause, resume = bodies[6], bodies[7]
    assert (pause["substate"], resume["substate"]) == ("standby", "physics")
    assert sent[7][0] - sent[6][0] >= 0.19
    assert bodies[-1]["total_stf_files"] == 5


def test_daqsim_pause_is_a_gap_without_messages() -> None:
    sent: list[tuple[float, str]] = []
    options = SimulationOptions(shape="daqsim", stfs_per_run=2, rate=FAST, pause_after=1,
                                pause_for=0.2, stf_ready=False)  # fmt: skip
    Simulator(options, lambda _, body: sent.append((time.monotonic(), body))).run()
    assert types([json.loads(body) for _, body in sent]) == [
        "run_imminent", "start_run", "stf_gen", "stf_gen", "end_run"
    ]  # fmt: skip
    assert sent[3][0] - sent[2][0] >= 0.19


def test_stop_ends_the_open_run_with_what_was_sent(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []
    simulator = Simulator(
        SimulationOptions(runs=None, stfs_per_run=10**9, rate=200, data_dir=tmp_path,
                          stf_size=1024, sparse=True),
        lambda _, body: sent.append(json.loads(body)),
    )  # fmt: skip
    thread = threading.Thread(target=simulator.run)
    thread.start()
    wait_until(lambda: "stf_gen" in types(sent), 5, "an STF announced")
    simulator.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert sent[-1]["msg_type"] == "end_run"
    assert sent[-1]["total_stf_files"] == types(sent).count("stf_gen") > 0
    assert types(sent).count("end_run") == 1


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"runs must .*; rate must"):
        SimulationOptions(rate=0, runs=0)
    with pytest.raises(ValueError, match="runner or daqsim"):
        SimulationOptions(shape="other")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "size"), [("4096", 4096), ("64M", 64 << 20), ("2GiB", 2 << 30), ("1 kb", 1024)]
)
def test_sizes_on_the_command_line(text: str, size: int) -> None:
    assert byte_size(text) == size


# -- STF files, read back as fastmon reads them -----------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
def test_written_files_are_read_back_by_storage_with_the_announced_checksums(
    tmp_path: Path, sparse: bool
) -> None:
    size, tf_count = 2_500_001, 10  # over the content pattern, and not a multiple of tf_count
    bodies = play(stfs_per_run=2, data_dir=tmp_path / "data", stf_size=size, sparse=sparse,
                  tf_count=tf_count)  # fmt: skip
    readies = [b for b in bodies if b["msg_type"] == "stf_ready"]
    assert len(readies) == 2
    for ready in readies:
        assert ready["tf_count"] == tf_count
        path = local_path(ready["file_url"], ready["filename"], [str(tmp_path / "data")])
        (whole,), read = read_tf_ranges(path, tf_count, [(0, tf_count - 1)])
        assert (whole.size_bytes, whole.checksum) == (ready["size_bytes"], ready["checksum"])
        assert read == size
        content = path.read_bytes()
        (part,), _ = read_tf_ranges(path, tf_count, [(3, 5)])
        piece = content[tf_offset(3, tf_count, size) : tf_offset(6, tf_count, size)]
        assert part.checksum == f"ad:{zlib.adler32(piece)}"
        if sparse:
            assert path.stat().st_blocks * 512 < size
    assert readies[0]["checksum"] != readies[1]["checksum"] or sparse


def test_file_content_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    checksums = {}
    for seed, copy in [(1, 1), (1, 2), (2, 1)]:
        directory = tmp_path / f"{seed}-{copy}"
        directory.mkdir()
        checksums[seed, copy] = write_stf_file(directory / "swf.1.000001.stf", 100_000, seed=seed)
    assert checksums[1, 1] == checksums[1, 2] != checksums[2, 1]


@pytest.mark.parametrize("size", [0, 1, 65520, 65521, 65522, 5_000_000])
def test_checksum_of_a_sparse_file_without_reading_it(size: int) -> None:
    assert zeros_adler32(size) == zlib.adler32(bytes(size))


# -- pacing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "window"), [(4.0, 1.1), (2000.0, 0.6)])
def test_rate_is_held_from_the_testbed_to_load_tests(rate: float, window: float) -> None:
    """Sanity, not a benchmark: bounds are generous for a busy machine."""
    simulator = Simulator(
        SimulationOptions(runs=None, stfs_per_run=10**9, rate=rate, stf_ready=False),
        lambda destination, body: None,
    )
    thread = threading.Thread(target=simulator.run)
    started = time.monotonic()
    thread.start()
    time.sleep(window)
    simulator.stop()
    elapsed = time.monotonic() - started
    thread.join(5)
    stfs = simulator.progress().stfs
    assert stfs <= (elapsed + MIN_WAIT_S) * rate + 1  # never ahead of the schedule
    assert stfs >= 0.5 * window * rate


# -- the command, against the real broker ------------------------------------------------------

StartProcess = Callable[..., ServiceProcess]


def simulate(start_process: StartProcess, topic: str, *args: str) -> ServiceProcess:
    argv = ["manage.py", "fastmon_simulate", "--destination", topic, *args]
    return start_process({}, command="fastmon_simulate", argv=argv)


def test_command_sends_whole_runs_in_order_to_the_broker(
    start_process: StartProcess, stomp_address: tuple[str, int], unique_topic: str
) -> None:
    with subscribed(stomp_address, broker_login(), unique_topic) as (_, collector):
        process = simulate(start_process, unique_topic, "--runs", "2", "--stfs", "5",
                           "--rate", "50", "--run", "900001", "--namespace", "epic-sim",
                           "--pause-after", "3", "--pause-for", "0.2")  # fmt: skip
        assert process.wait() == 0, process.output()
        bodies = collector.json_bodies(30)
    one_run = ["run_imminent", "start_run", *["stf_gen", "stf_ready"] * 3, "pause_run",
               "resume_run", *["stf_gen", "stf_ready"] * 2, "end_run"]  # fmt: skip
    assert types(bodies) == one_run * 2
    assert [b["run_id"] for b in bodies] == [900001] * 15 + [900002] * 15
    assert {b["namespace"] for b in bodies} == {"epic-sim"}
    assert "fastmon_simulate done: run 900002 (2/2): 10 STFs, 30 messages" in process.output()


def test_command_stopped_by_sigint_ends_the_run_and_exits_0(
    start_process: StartProcess, stomp_address: tuple[str, int], unique_topic: str
) -> None:
    with subscribed(stomp_address, broker_login(), unique_topic) as (_, collector):
        process = simulate(start_process, unique_topic, "--stfs", "100000", "--rate", "10")
        frames = collector.frames_received(6, timeout=30, settle=0)
        assert len(frames) == 6, process.output()
        process.signal(signal.SIGINT)
        assert process.wait() == 0, process.output()
        frames += collector.frames_received(10**6, timeout=3, settle=0)
    bodies = [json.loads(frame.body) for frame in frames]
    assert types(bodies)[:2] == ["run_imminent", "start_run"]
    assert types(bodies)[-1] == "end_run"
    assert types(bodies).count("end_run") == 1
    assert bodies[-1]["total_stf_files"] == types(bodies).count("stf_gen")
    assert "fastmon_simulate stopped" in process.output()


def test_the_fast_processing_stage_played_cuts_answers_and_retries() -> None:
    from fastmon.simulator.downstream import DownstreamOptions, FastProcessing

    sent: list[tuple[str, dict[str, Any]]] = []
    options = DownstreamOptions(tf_per_slice=4, processing_s=0.01, failure_rate=1.0)
    play = FastProcessing(options, lambda destination, body: sent.append(
        (destination, json.loads(body))))  # fmt: skip
    player = threading.Thread(target=play.run)
    player.start()
    play.registered(example("tf_file_registered", tf_first=10, tf_last=19, run_id=7))
    wait_until(lambda: len(sent) == 12, 5, "3 slices, failed, queued again, done")
    play.stop()
    player.join(5)

    slices = [body for where, body in sent if where == options.slices_destination]
    results = [body for where, body in sent if where == options.results_destination]
    assert [(s["content"]["start"], s["content"]["end"]) for s in slices[:3]] == [
        (10, 13), (14, 17), (18, 19)]  # fmt: skip
    assert len({s["content"]["req_id"] for s in slices}) == 6  # each queueing a request
    states = [r["content"]["state"] for r in results]
    assert sorted(states) == ["done"] * 3 + ["failed"] * 3  # every first try fails, retries pass
    name = results[0]["content"]["result"]["result"]["tf_filename"]
    assert name.startswith("swf.101993.000001_tf_001_slice_") and name.endswith(".tf")
    for body in slices + results:  # what fastmon reads of them
        assert validate_message(body).msg_type in ("slice", "slice_result")


# -- faults ------------------------------------------------------------------------------------


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
    assert "pause_run" not in types([body for _, body in sent])
    assert sent[-1][1]["total_stf_files"] == 7  # the DAQ counted the STF it never announced


@pytest.mark.parametrize("text", ["gap", "gap@0", "gap@3:2", "stall@2:-1", "melt@2", "slow@x"])
def test_faults_are_checked(text: str) -> None:
    from fastmon.simulator.faults import parse_fault

    with pytest.raises(ValueError, match="fault"):
        parse_fault(text)
