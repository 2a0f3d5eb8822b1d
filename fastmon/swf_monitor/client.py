"""swf-monitor's REST API as fastmon calls it: agent heartbeats and its own fastmon-files table
(``docs/wire-formats.md``). Standard library HTTP: two endpoints do not need a client
library, and every call has a timeout."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from fastmon.conf import fastmon_settings

HEARTBEAT_PATH = "/api/systemagents/heartbeat/"
FASTMON_FILES_PATH = "/api/fastmon-files/"


class MonitorUnavailable(OSError):
    """Worth retrying later: unreachable, timed out, a server error, our token refused (an
    operator's fix; meanwhile nothing is given up). ``answered``: swf-monitor itself answered,
    so the trouble may be this request's alone."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass(frozen=True)
class Answer:
    status: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None


_RETRY_STATUSES = {401, 403, 408, 429}


def call(
    method: str,
    path: str,
    payload: Any = None,
    query: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Answer:
    """One request to SWF_MONITOR_URL with the token; a client error (4xx) is an answer,
    anything worth retrying raises ``MonitorUnavailable``."""
    url = fastmon_settings.SWF_MONITOR_URL.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(
        url,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method=method,
    )
    if token := fastmon_settings.SWF_API_TOKEN:
        request.add_header("Authorization", f"Token {token}")
    try:
        timeout = timeout or fastmon_settings.SWF_MONITOR_TIMEOUT_S
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Answer(r.status, r.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        answer = Answer(exc.code, _body(exc))
        if exc.code >= 500 or exc.code in _RETRY_STATUSES:
            detail = f"{method} {path}: HTTP {exc.code} {answer.text[:200]}"
            raise MonitorUnavailable(detail, answered=True) from None
        return answer
    # URLError, timeouts, resets, a malformed answer (HTTPException); ValueError: a bad URL.
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise MonitorUnavailable(f"{method} {path}: {exc!r}") from None


def _body(error: urllib.error.HTTPError) -> str:
    try:
        return error.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""


def fastmon_files(**query: str) -> list[dict[str, Any]]:
    """swf-monitor's fastmon-files rows matching ``query`` (``tf_filename``, ``stf_filename``)."""
    answer = call("GET", FASTMON_FILES_PATH, query=query)
    rows = answer.json() if answer.ok else None
    if isinstance(rows, dict):  # paginated
        rows = rows.get("results")
    return [row for row in rows or [] if isinstance(row, dict)]


def registered_fastmon_file(tf_filename: str) -> dict[str, Any] | None:
    """swf-monitor's row of this TF sample, if it has it (its tf_filename is unique there)."""
    rows = fastmon_files(tf_filename=tf_filename)
    return next((row for row in rows if row.get("tf_filename") == tf_filename), None)


def fastmon_file_path(tf_file_id: str) -> str:
    """One of swf-monitor's fastmon-files rows, by its id."""
    return f"{FASTMON_FILES_PATH}{tf_file_id}/"
