"""The heartbeat every testbed agent sends swf-monitor (``docs/wire-formats.md``): a POST to
``{SWF_MONITOR_URL}/api/systemagents/heartbeat/``, its body field for field."""

from __future__ import annotations

from typing import Any

from fastmon.swf_monitor.client import HEARTBEAT_PATH, MonitorUnavailable, call


def send_heartbeat(payload: dict[str, Any], timeout: float | None = None) -> None:
    answer = call("POST", HEARTBEAT_PATH, payload, timeout=timeout)
    if not answer.ok:
        raise MonitorUnavailable(f"heartbeat refused: HTTP {answer.status} {answer.text[:200]}")
