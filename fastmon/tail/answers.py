"""What a served site may answer ``fastmon-tail --url``, checked before any of it is used: the
site is only as trustworthy as the network between, and a wrong answer must end in one clear
line, not a traceback or a client that reads forever. The token goes to the origin ``--url``
names (scheme, host, port) and nowhere else."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastmon.tail.render import PAGE, Frame, first_line

# The most one answer may hold: an /events page or a websocket message (a page of 1000 events is
# a few MB; the websocket sends at most 500 events a message).
MAX_ANSWER_BYTES = 64 * 1024 * 1024

_WEB_SCHEME = {"ws": "http", "wss": "https"}  # a websocket's origin is its page's
_DEFAULT_PORT = {"http": 80, "https": 443}


class Fatal(Exception):
    """Waiting will not change it: fastmon-tail says so and exits with ``status``. The site
    refused (a wrong address or token): 1."""

    status = 1


class BadAnswer(Fatal):
    """The site answered something fastmon-tail will not use: not fastmon's shape, too large, or
    sending it (and its token) to another origin. Exit status 3."""

    status = 3


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) or ws(s) address, ws counted as http and wss as
    https; ValueError for anything else."""
    parts = urllib.parse.urlsplit(url)
    scheme = _WEB_SCHEME.get(parts.scheme.lower(), parts.scheme.lower())
    port = parts.port  # ValueError when it is not a number
    if scheme not in _DEFAULT_PORT or not parts.hostname:
        raise ValueError(f"{url!r} is not an http://, https://, ws:// or wss:// address")
    return scheme, parts.hostname, port or _DEFAULT_PORT[scheme]


def same_origin(url: str, site: str) -> bool:
    try:
        return origin(url) == origin(site)
    except ValueError:
        return False


def decoded(raw: bytes | str, what: str) -> Any:
    """JSON, or a BadAnswer naming ``what`` was not."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than Python's
        raise BadAnswer(f"{what} is not JSON ({first_line(exc)[:80]})") from None


def events_page(value: Any, since: int) -> list[Frame]:
    """An /events answer: at most a page of events, each after ``since`` and the one before;
    anything else would have fastmon-tail ask for the same page again, forever."""
    page = events(value, "/events")
    if len(page) > PAGE:
        raise BadAnswer(f"/events sent {len(page)} events, more than the {PAGE} asked for")
    previous = since
    for frame in page:
        if frame["sequence"] <= previous:
            raise BadAnswer(f"/events sent sequence {frame['sequence']} after {previous}: "
                            "not in order")  # fmt: skip
        previous = frame["sequence"]
    return page


def message(raw: bytes | str) -> dict[str, Any]:
    """A websocket message: an object whose ``type`` says what it is. Types not known here pass
    (the site may grow new ones); the fields of the known ones are checked."""
    data = decoded(raw, "a websocket message")
    if not isinstance(data, dict):
        raise BadAnswer(f"a websocket message is a JSON {_kind(data)}, not an object")
    match data.get("type"):
        case "events":
            events(data.get("events"), "a websocket events message")
        case "live":
            _sequence(data, "sequence", "a websocket live message")
        case "skipped":
            for field in ("after", "upto"):
                _sequence(data, field, "a websocket skipped message")
    return data


def events(value: Any, what: str) -> list[Frame]:
    """Events as /events and the websocket carry them: objects with a sequence number, a kind
    and a run number or null (the rest is shown as it is)."""
    if not isinstance(value, list):
        raise BadAnswer(f"{what} holds a JSON {_kind(value)}, not a list of events")
    for index, frame in enumerate(value):
        where = f"{what}, event {index}"
        if not isinstance(frame, dict):
            raise BadAnswer(f"{where} is a JSON {_kind(frame)}, not an object")
        _sequence(frame, "sequence", where)
        if not isinstance(frame.get("kind"), str):
            raise BadAnswer(f"{where} has kind {_shown(frame.get('kind'))}, not a string")
        if "run_number" not in frame:
            raise BadAnswer(f"{where} has no run_number")
        run_number = frame["run_number"]
        if run_number is not None and not _whole(run_number):
            raise BadAnswer(f"{where} has run_number {_shown(run_number)}, not a number or null")
    return value


def _sequence(data: dict[str, Any], field: str, what: str) -> None:
    if field not in data:
        raise BadAnswer(f"{what} has no {field}")
    if not _whole(data[field]) or data[field] < 0:
        raise BadAnswer(f"{what} has {field} {_shown(data[field])}, not a whole number >= 0")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
