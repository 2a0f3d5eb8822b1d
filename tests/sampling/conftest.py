"""The sampling tests' fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from fastmon.testing.processes import ServiceProcess
from fastmon.testing.sampling import ThroughBroker


@pytest.fixture
def through_broker(
    start_process: Callable[..., ServiceProcess],
    publish: Callable[[str, Iterable[str]], None],
    unique_topic: str,
) -> ThroughBroker:
    return ThroughBroker(start_process, publish, unique_topic)
