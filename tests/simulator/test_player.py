"""The simulator's runs: the sequence of a run in each shape, pauses, a clean stop, the STF files
it writes read back as fastmon reads them, and its pacing."""

from __future__ import annotations

import json
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from fastmon.content import etf1
from fastmon.inbound.schema import decode_body, validate_message
from fastmon.sampling.reading import local_path, read_tf_ranges
from fastmon.sampling.spans import tf_offset
from fastmon.simulator.player import SimulationOptions, Simulator
from fastmon.simulator.shapes import MIN_WAIT_S
from fastmon.testing.messages import example, msg_types
from fastmon.testing.waiting import wait_until

FAST = 1e6  # STFs per second: no waiting, for tests of the sequence alone
EXTENSIONS = ["tf_count", "tf_offsets"]  # fastmon's, in stf_ready after the testbed's fields


def play(**options: Any) -> list[dict[str, Any]]:
    """Every body one simulation sends, in order, each checked to parse as fastmon parses it."""
    sent: list[dict[str, Any]] = []

    def send(destination: str, body: str) -> None:
        assert destination == "/topic/epictopic"
        validate_message(decode_body(body, 1 << 20))
        sent.append(json.loads(body))

    Simulator(SimulationOptions(**{"rate": FAST, **options}), send).run()
    return sent


# -- the sequence of a run ---------------------------------------------------------------------


def assert_like_example(body: dict[str, Any], name: str, run_id_type: type = int) -> None:
    """Same keys, in the same order, and the same types as the spec's example; fastmon's
    extensions, when there, after them."""
    spec = example(name)
    assert list(body) == list(spec) + [key for key in EXTENSIONS if key in body], name
    for key, value in spec.items():
        expected = run_id_type if key == "run_id" else type(value)
        assert isinstance(body[key], expected), f"{name}.{key}: {body[key]!r}"


def test_runner_run_in_order_with_bodies_shaped_as_the_examples(tmp_path: Path) -> None:
    bodies = play(runs=2, stfs_per_run=3, namespace="epic-fastmon", first_run=100010,
                  data_dir=tmp_path, stf_size=4096)  # fmt: skip
    one_run = ["run_imminent", "start_run", *["stf_gen", "stf_ready"] * 3, "end_run"]
    assert msg_types(bodies) == one_run * 2
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
    assert {len(b["tf_offsets"]) for b in bodies if b["msg_type"] == "stf_ready"} == {1001}
    ticks = [b["simulation_tick"] for b in bodies[:9]]
    assert ticks == sorted(ticks)


def test_daqsim_run_in_order_with_string_run_ids(tmp_path: Path) -> None:
    bodies = play(shape="daqsim", stfs_per_run=2, first_run=100010, data_dir=tmp_path,
                  stf_size=4096, pause_after=1, pause_for=0, namespace="epic-fastmon")  # fmt: skip
    assert msg_types(bodies) == ["run_imminent", "start_run", "stf_gen", "stf_ready", "stf_gen",
                             "stf_ready", "end_run"]  # fmt: skip
    assert {b["run_id"] for b in bodies} == {"100010"}
    for body in bodies:
        if body["msg_type"] != "stf_ready":  # the data agent's, not the DAQ simulator's
            assert "namespace" not in body and "sender" not in body
    assert_like_example(bodies[2], "stf_gen_daqsim", str)
    assert_like_example(bodies[3], "stf_ready", str)
    assert bodies[2]["checksum"] == bodies[3]["checksum"]
    written = tmp_path / "swf.100010.run" / bodies[2]["filename"]  # ETF1, of the size it came to
    assert bodies[2]["size"] == bodies[3]["size_bytes"] == written.stat().st_size
    assert bodies[0]["run_conditions"]["beam_energy"]
    assert bodies[0]["timestamp"].isdigit() and bodies[1]["ts"].isdigit()


def test_without_files_nothing_is_written_and_no_checksum_is_claimed() -> None:
    bodies = play(stfs_per_run=1, stf_size=2 * 1024**3)
    ready = bodies[3]
    assert (ready["file_url"], ready["checksum"], ready["size_bytes"]) == (None, None, 2 * 1024**3)
    assert "tf_count" not in ready


def test_stf_ready_can_be_left_to_a_real_data_agent() -> None:
    assert msg_types(play(stfs_per_run=2, stf_ready=False)) == [
        "run_imminent", "start_run", "stf_gen", "stf_gen", "end_run"
    ]  # fmt: skip


def test_runner_pauses_after_every_n_stfs_but_not_after_the_last() -> None:
    sent: list[tuple[float, str]] = []
    options = SimulationOptions(stfs_per_run=5, rate=FAST, pause_after=2, pause_for=0.2)
    Simulator(options, lambda _, body: sent.append((time.monotonic(), body))).run()
    bodies = [json.loads(body) for _, body in sent]
    stfs = ["stf_gen", "stf_ready"]
    standby = ["pause_run", "resume_run"]
    assert msg_types(bodies) == ["run_imminent", "start_run", *stfs * 2, *standby, *stfs * 2,
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
    assert msg_types([json.loads(body) for _, body in sent]) == [
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
    wait_until(lambda: "stf_gen" in msg_types(sent), 5, "an STF announced")
    simulator.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert sent[-1]["msg_type"] == "end_run"
    assert sent[-1]["total_stf_files"] == msg_types(sent).count("stf_gen") > 0
    assert msg_types(sent).count("end_run") == 1


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"runs must .*; rate must"):
        SimulationOptions(rate=0, runs=0)
    with pytest.raises(ValueError, match="runner or daqsim"):
        SimulationOptions(shape="other")  # type: ignore[arg-type]


# -- STF files, read back as fastmon reads them -----------------------------------------------


def index_of(data: bytes) -> list[int] | None:
    """The TF offsets an ETF1 file's index and trailer give."""
    return etf1.read_boundaries(lambda at, n: data[at : at + n], len(data))


@pytest.mark.parametrize("content", ["etf1", "random", "sparse"])
def test_written_files_are_read_back_by_storage_with_the_announced_checksums(
    tmp_path: Path, content: str
) -> None:
    size, tf_count = 2_500_001, 10  # over the content pattern, and not a multiple of tf_count
    sparse = content == "sparse"
    bodies = play(stfs_per_run=2, data_dir=tmp_path / "data", stf_size=size, sparse=sparse,
                  content="random" if content == "random" else "etf1",  # sparse: zeros anyway
                  tf_count=tf_count)  # fmt: skip
    readies = [b for b in bodies if b["msg_type"] == "stf_ready"]
    assert len(readies) == 2
    for ready in readies:
        assert ready["tf_count"] == tf_count
        path = local_path(ready["file_url"], ready["filename"], [str(tmp_path / "data")])
        content_bytes = path.read_bytes()
        assert ready["size_bytes"] == len(content_bytes)
        assert ready["checksum"] == f"ad:{zlib.adler32(content_bytes)}"
        offsets = ready.get("tf_offsets")
        (whole,), read = read_tf_ranges(path, tf_count, [(0, tf_count - 1)], offsets)
        (part,), _ = read_tf_ranges(path, tf_count, [(3, 5)], offsets)
        if content == "etf1":  # the TFs where the file's index puts them, the index left out
            assert offsets == index_of(content_bytes)
            assert read == whole.size_bytes == offsets[-1] < len(content_bytes)
            assert whole.checksum == f"ad:{zlib.adler32(content_bytes[: offsets[-1]])}"
            piece = content_bytes[offsets[3] : offsets[6]]
        else:  # no offsets: TF i is an equal share of the file, all of it
            assert offsets is None and read == size
            assert (whole.size_bytes, whole.checksum) == (size, ready["checksum"])
            piece = content_bytes[tf_offset(3, tf_count, size) : tf_offset(6, tf_count, size)]
        assert part.checksum == f"ad:{zlib.adler32(piece)}"
        if sparse:
            assert path.stat().st_blocks * 512 < size
    assert readies[0]["checksum"] != readies[1]["checksum"] or sparse


@pytest.mark.parametrize(
    ("options", "announced"),
    [
        ({}, {"tf_count": 1000, "tf_offsets": 1001}),
        ({"tf_count": 30}, {"tf_count": 30, "tf_offsets": 31}),
        ({"tf_offsets": False}, {}),
        ({"tf_offsets": False, "tf_count": 30}, {"tf_count": 30}),
        ({"content": "random"}, {}),
        ({"sparse": True, "tf_count": 30}, {"tf_count": 30}),
    ],
)
def test_stf_ready_announces_an_etf1_files_tf_offsets_unless_told_not_to(
    tmp_path: Path, options: dict[str, Any], announced: dict[str, int]
) -> None:
    """With tf_offsets, the tf_count they make; without, tf_count only when one was chosen."""
    bodies = play(stfs_per_run=1, data_dir=tmp_path, stf_size=256 * 1024, **options)
    ready = next(b for b in bodies if b["msg_type"] == "stf_ready")
    found = {key: ready[key] for key in EXTENSIONS if key in ready}
    if "tf_offsets" in found:
        found["tf_offsets"] = len(found["tf_offsets"])
    assert found == announced
    path = local_path(ready["file_url"], ready["filename"], [str(tmp_path)])
    etf1_file = options.get("content", "etf1") == "etf1" and not options.get("sparse")
    assert (path.read_bytes()[:4] == etf1.MAGIC) == etf1_file


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
    # The STFs of ``window`` seconds at the rate, sent within twice that: half the rate at least.
    target = round(window * rate)
    try:
        wait_until(lambda: simulator.progress().stfs >= target, 2 * window,
                   f"{target} STFs at {rate} STF/s")  # fmt: skip
    finally:
        simulator.stop()
        elapsed = time.monotonic() - started
        thread.join(5)
    stfs = simulator.progress().stfs
    assert stfs <= (elapsed + MIN_WAIT_S) * rate + 1  # never ahead of the schedule
