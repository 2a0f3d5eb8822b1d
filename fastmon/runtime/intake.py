"""Frames from the transport's receiver thread to the consumer's loop, bounded."""

from __future__ import annotations

import threading
from collections import deque

from fastmon.transport.base import Delivery


class Intake:
    """Frames from stomp.py's receiver thread to the loop, which takes them a batch at a time.

    The loop sleeps until a whole batch is there (or its wait ends) instead of waking for each
    frame, as one ``queue.Queue.get`` per frame made it do: at thousands of frames a second,
    those wake-ups and GIL hand-overs cost about as much as parsing the frames.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._frames: deque[Delivery] = deque()
        self._wanted = 1
        self._changed = threading.Condition()

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, delivery: Delivery) -> bool:
        """Append without blocking; False if full."""
        with self._changed:
            if len(self._frames) >= self.maxsize:
                return False
            self._frames.append(delivery)
            if len(self._frames) >= self._wanted:
                self._changed.notify()
        return True

    def wait_for(self, count: int, timeout: float) -> None:
        """Return once ``count`` frames are there, or after ``timeout`` seconds."""
        with self._changed:
            self._wanted = count
            self._changed.wait_for(lambda: len(self._frames) >= count, timeout)

    def take(self, limit: int) -> list[Delivery]:
        """Up to ``limit`` frames, oldest first."""
        with self._changed:
            return [self._frames.popleft() for _ in range(min(limit, len(self._frames)))]
