"""Waiting in tests on a condition, never for a fixed time: ``wait_until`` something happens,
or check that something ``holds_for`` a while. Each fails naming what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn


def fail(message: str) -> NoReturn:
    """Fail the running test with ``message`` alone, no traceback (pytest's ``fail``), or raise
    AssertionError where pytest is not installed."""
    try:
        import pytest
    except ImportError:
        raise AssertionError(message) from None
    pytest.fail(message, pytrace=False)


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    context: Callable[[], str] | None = None,
) -> Any:
    """Poll until ``condition()`` is truthy and return its value; fail naming ``what`` (and
    showing ``context()``, say a process's log) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            shown = f"\n{context()}" if context else ""
            fail(f"timed out after {timeout}s waiting for {what}{shown}")
        time.sleep(0.1)


def holds_for(condition: Callable[[], Any], seconds: float, what: str) -> None:
    """Check ``condition()`` again and again for ``seconds``; fail as soon as it is false. For
    "nothing more happens": a violation shows the moment it happens, not after a fixed sleep."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            fail(f"{what} stopped holding")
        time.sleep(0.02)
    assert condition(), f"{what} stopped holding"
