"""Long-running commands in tests: ``manage.py run_fastmon`` (or a Celery worker, uvicorn,
``fastmon_tail``) in a subprocess of its own session, its output in a log file, and the
settings a run_fastmon under test starts from."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastmon.testing.waiting import wait_until


def consumer_settings(topic: str, **changes: Any) -> dict[str, Any]:
    """``FASTMON`` for a run_fastmon of a test's own: reading ``topic``, under an agent name no
    other consumer has (so a durable subscription of its own), retrying and summing up quickly,
    sampling off (no worker to sample); then ``changes``."""
    return {
        "SUBSCRIBE_DESTINATIONS": [topic],
        "SAMPLING_ENABLED": False,
        "AGENT_NAME": f"fastmon-agent-test-{uuid.uuid4().hex[:8]}",
        "RETRY_MIN_S": 0.1,
        "RETRY_MAX_S": 1.0,
        "SUMMARY_INTERVAL_S": 1.0,
        **changes,
    }


class ServiceProcess:
    """``argv`` run in a subprocess of its own session (so ``kill_all`` reaches the children it
    starts, a Celery worker's pool), in ``cwd`` with ``env``, its output in ``log_path``."""

    def __init__(
        self,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20, count: int = 1) -> None:
        """Wait until ``text`` is in the log ``count`` times; fail if the process exits first."""
        wait_until(
            lambda: self.output().count(text) >= count or self.process.poll() is not None,
            timeout, f"{text!r} in {self.log_path.name}",
        )  # fmt: skip
        assert self.output().count(text) >= count, f"the process exited:\n{self.output()}"

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill_all(self) -> None:
        """SIGKILL the process and every child it started (a Celery worker's pool)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.wait()

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self.log.close()
