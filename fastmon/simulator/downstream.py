"""The fast-processing stage, played: the testbed's fast-processing agent and its PanDA workers,
so that a demo (or a load test) shows the whole fast path. Each ``tf_file_registered`` is cut
into slices of ``tf_per_slice`` TFs, each sent as a ``slice``; a worker answers each after
about ``processing_s`` with a ``slice_result``; a few fail, are queued again (a retry) and then
succeed. Pure Python: it is given ``send(destination, body)``; ``run()`` plays the delays in the
calling thread until ``stop()``."""

from __future__ import annotations

import heapq
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Body = dict[str, Any]


@dataclass(frozen=True)
class DownstreamOptions:
    slices_destination: str = "/topic/panda.slices"
    # Where the workers' answers go. The testbed's is the queue the fast-processing agent
    # reads; a demo with no such agent sends them where fastmon reads its copy.
    results_destination: str = "/queue/panda.results.fastprocessing"
    tf_per_slice: int = 2
    processing_s: float = 2.0
    failure_rate: float = 0.05
    workers: int = 4
    seed: int = 0


def slice_name(sample: str, number: int) -> str:
    """The agent's name for slice ``number`` of a TF sample."""
    return f"{sample.rsplit('.', 1)[0]}_slice_{number:03d}.tf"


def slice_message(run_id: int, sample: Mapping[str, Any], number: int, first: int, last: int,
                  req_id: str) -> Body:  # fmt: skip
    """The fast-processing agent's ``slice``, field for field."""
    return {
        "msg_type": "slice", "run_id": run_id, "created_at": _now(),
        "content": {
            "run_id": run_id, "execution_id": sample.get("execution_id"), "req_id": req_id,
            "filename": sample.get("stf_filename"),
            "tf_filename": slice_name(sample["tf_filename"], number), "slice_id": number,
            "start": first, "end": last, "tf_count": last - first + 1,
            "state": "queued", "substate": "new",
        },
    }  # fmt: skip


def result_message(run_id: int, name: str, number: int, done: bool, worker: str,
                   seconds: float) -> Body:  # fmt: skip
    """A PanDA worker's ``slice_result``, field for field."""
    return {
        "msg_type": "slice_result", "run_id": run_id, "created_at": _now(),
        "content": {
            "state": "done" if done else "failed", "processed_at": _now(), "hostname": worker,
            "panda_id": None, "result": {"result": {
                "slice_id": number, "tf_filename": name, "processed": done, "origin_message": {},
                "metrics": {"processing_seconds": round(seconds, 3)}, "payload_result": {},
            }},
        },
    }  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


class FastProcessing:
    def __init__(self, options: DownstreamOptions, send: Callable[[str, str], None]) -> None:
        self.options = options
        self.send = send
        self.random = random.Random(options.seed)
        self._due: list[tuple[float, int, str, Body]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False

    def registered(self, body: Mapping[str, Any]) -> None:
        """A ``tf_file_registered`` arrived: queue its slices (from the caller's thread)."""
        run_id, first, last = body.get("run_id"), body.get("tf_first"), body.get("tf_last")
        if not isinstance(run_id, int) or not isinstance(first, int) or not isinstance(last, int):
            return
        step = self.options.tf_per_slice
        for number, start in enumerate(range(first, last + 1, step)):
            self._queue(run_id, body, number, start, min(start + step - 1, last), attempt=0)

    def _queue(self, run_id: int, sample: Mapping[str, Any], number: int, first: int, last: int,
               attempt: int) -> None:  # fmt: skip
        options = self.options
        self._later(
            0,
            options.slices_destination,
            slice_message(run_id, sample, number, first, last, str(uuid.uuid4())),
        )
        seconds = options.processing_s * self.random.uniform(0.5, 1.5)
        done = attempt > 0 or self.random.random() >= options.failure_rate
        worker = f"worker-{self.random.randrange(options.workers):02d}"
        name = slice_name(sample["tf_filename"], number)
        self._later(
            seconds,
            options.results_destination,
            result_message(run_id, name, number, done, worker, seconds),
        )
        if not done:  # the agent queues a failed slice again
            self._later(seconds, "", {"retry": (run_id, sample, number, first, last)})

    def _later(self, seconds: float, destination: str, body: Body) -> None:
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + seconds, next(self._order),
                                       destination, body))  # fmt: skip
            self._changed.notify()

    def run(self) -> None:
        """Send what falls due, until ``stop()``."""
        while True:
            with self._changed:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._changed.wait(wait)
                if self._stopping:
                    return
                _, _, destination, body = heapq.heappop(self._due)
            if "retry" in body:
                run_id, sample, number, first, last = body["retry"]
                self._queue(run_id, sample, number, first, last, attempt=1)
            else:
                self.send(destination, json.dumps(body))

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
