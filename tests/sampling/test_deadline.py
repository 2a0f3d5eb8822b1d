"""A remote read's deadline, at the socket: a server that sends a byte well within every
per-operation timeout still sees the request end by the deadline, headers or body."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from fastmon.sampling.deadline import Deadline, http_transport
from fastmon.sampling.roots import RemoteError
from fastmon.testing.hostile_server import HostileServer


def test_a_server_dripping_its_answer_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    (tmp_path / "a.stf").write_bytes(b"x" * 1000)
    client = httpx.Client(transport=http_transport(1), timeout=5.0)
    with HostileServer(tmp_path, "drip", drip_every=0.1) as server:
        began = time.monotonic()
        with Deadline(1.0).held(), pytest.raises((RemoteError, httpx.ReadTimeout)):
            client.get(f"{server.url}a.stf")
        took = time.monotonic() - began
        sent = server.sent
    assert 0.9 < took < 1.5, took
    assert 5 <= sent < 20  # headers, a byte at a time: a 5 s timeout a byte never tripped


def test_the_deadline_bounds_each_wait_and_then_refuses() -> None:
    deadline = Deadline(0.5)
    assert deadline.timeout(10.0) <= 0.5 and deadline.whole_seconds() == 1
    time.sleep(0.6)
    with pytest.raises(RemoteError, match=r"not read within REMOTE_READ_DEADLINE_S \(0.5s\)"):
        deadline.timeout()
