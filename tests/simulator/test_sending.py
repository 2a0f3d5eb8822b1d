"""fastmon_simulate against the real ActiveMQ: whole runs in order, a clean stop on SIGINT, the
files it writes and what stf_ready says of them; and the sizes its command line takes."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from fastmon.simulator.sending import byte_size
from fastmon.testing.broker import broker_login, subscribed
from fastmon.testing.messages import msg_types
from fastmon.testing.processes import ServiceProcess

StartProcess = Callable[..., ServiceProcess]


@pytest.mark.parametrize(
    ("text", "size"), [("4096", 4096), ("64M", 64 << 20), ("2GiB", 2 << 30), ("1 kb", 1024)]
)
def test_sizes_on_the_command_line(text: str, size: int) -> None:
    assert byte_size(text) == size


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
    assert msg_types(bodies) == one_run * 2
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
    assert msg_types(bodies)[:2] == ["run_imminent", "start_run"]
    assert msg_types(bodies)[-1] == "end_run"
    assert msg_types(bodies).count("end_run") == 1
    assert bodies[-1]["total_stf_files"] == msg_types(bodies).count("stf_gen")
    assert "fastmon_simulate stopped" in process.output()


@pytest.mark.parametrize(
    ("flags", "magic", "announced"),
    [
        ([], b"ETF1", ["tf_count", "tf_offsets"]),
        (["--no-tf-offsets"], b"ETF1", []),
        (["--content", "random", "--tf-count", "20"], None, ["tf_count"]),
    ],
)
def test_command_writes_etf1_files_and_announces_their_tf_offsets_unless_told_not_to(
    start_process: StartProcess,
    stomp_address: tuple[str, int],
    unique_topic: str,
    tmp_path: Path,
    flags: list[str],
    magic: bytes | None,
    announced: list[str],
) -> None:
    data = tmp_path / "stf"
    with subscribed(stomp_address, broker_login(), unique_topic) as (_, collector):
        process = simulate(start_process, unique_topic, "--stfs", "2", "--rate", "50",
                           "--data-dir", str(data), "--stf-size", "300K", *flags)  # fmt: skip
        assert process.wait() == 0, process.output()
        bodies = collector.json_bodies(7)
    readies = [b for b in bodies if b["msg_type"] == "stf_ready"]
    assert len(readies) == 2
    for ready in readies:
        content = next(data.glob(f"*/{ready['filename']}")).read_bytes()
        assert ready["size_bytes"] == len(content)
        assert [key for key in ("tf_count", "tf_offsets") if key in ready] == announced
        assert (content[:4] == magic) if magic else not content.startswith(b"ETF1")
        if "tf_offsets" in ready:
            assert len(ready["tf_offsets"]) == ready["tf_count"] + 1 == 1001
            assert ready["tf_offsets"][-1] == len(content) - 8 * 1001 - 16
