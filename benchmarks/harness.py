"""What the reliability benchmarks share: run_fastmon on a queue of its own, its crashes
counted, and counts read from the database across its restarts. Import it after putting the
checkout on sys.path: through benchmarks.consume, it names the benchmarks' settings and
database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from benchmarks.consume import ROOT  # its import sets the benchmarks' settings and database


class RunFastmon:
    """``manage.py run_fastmon`` on one queue, its output in a log of its own."""

    def __init__(self, destination: str) -> None:
        self.changes = {"SUBSCRIBE_DESTINATIONS": [destination], "SAMPLING_ENABLED": False,
                        "AGENT_NAME": f"fastmon-reliability-{uuid.uuid4().hex[:6]}",
                        "RETRY_MIN_S": 0.1, "RETRY_MAX_S": 1.0}  # fmt: skip
        self.log = Path(f"/tmp/fastmon-reliability-{uuid.uuid4().hex[:6]}.log")
        self.log.touch()
        self.process: subprocess.Popen[bytes] | None = None
        self.crashed = 0

    def start(self) -> None:
        """Start it and return once it has subscribed: a SIGTERM before its signal handlers
        are set would look like a crash."""
        env = {**os.environ, "FASTMON_TEST_SETTINGS": json.dumps(self.changes)}
        subscribed = self._subscriptions()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "manage.py", "run_fastmon"],
                                            cwd=ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)  # fmt: skip
        while self._subscriptions() == subscribed and self.process.poll() is None:
            time.sleep(0.01)

    def _subscriptions(self) -> int:
        return self.log.read_text(errors="replace").count("subscribed to")

    def check(self) -> None:
        """A run_fastmon that exited without being asked to is a crash: counted, restarted."""
        if self.process is not None and self.process.poll() is not None:
            self.crashed += 1
            self.start()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        if self.process.wait(60) != 0:
            self.crashed += 1
        self.crashed += self.log.read_text(errors="replace").count("Traceback")


def query(read: Callable[[], int]) -> int:
    """A count from the database, across its restart."""
    from django.db import OperationalError, connection

    while True:
        try:
            return read()
        except OperationalError:
            connection.close()
            time.sleep(0.5)
