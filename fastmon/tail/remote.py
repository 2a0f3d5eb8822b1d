"""``fastmon_tail --url``: a served site's live events, with no database. The API's
``/events`` catches up from the last sequence shown; then the websocket carries what comes
next. After a disconnect (a server restart, a network cut) it does the same again from its last
sequence, so nothing is missed, and a sequence already shown is never shown twice."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from fastmon.retry import backoff_delay
from fastmon.tail.render import PAGE, Frame, View, first_line

# Answers that waiting will not change: a wrong address or token; the websocket's refusals
# (4403: a login is needed, 4400: a bad query).
FATAL_STATUSES = {401, 403, 404}
REFUSED_CLOSE_CODES = {4400, 4403}


class Site:
    """fastmon's API and websocket at ``url`` (fastmon's address in the site)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url if url.endswith("/") else f"{url}/"
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        # The README's wiring puts the websocket at <fastmon>/ws/live/; the API says where it
        # really is (its Link header) once asked.
        parsed = urllib.parse.urlsplit(self.url)
        scheme = "wss" if parsed.scheme == "https" else "ws"
        self.websocket = parsed._replace(scheme=scheme, path=f"{parsed.path}ws/live/").geturl()

    def events(self, since: int) -> list[Frame]:
        query = urllib.parse.urlencode({"since": since, "limit": PAGE})
        request = urllib.request.Request(f"{self.url}api/events/?{query}", headers=self.headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            if live := re.search(r'<([^>]+)>;\s*rel="live"', response.headers.get("Link", "")):
                self.websocket = urllib.parse.urljoin(self.websocket, live[1])
            return json.loads(response.read())

    def listen(self, since: int | None) -> ClientConnection:
        query = "" if since is None else f"?since={since}"
        return connect(f"{self.websocket}{query}", additional_headers=self.headers,
                       open_timeout=10)  # fmt: skip


def follow_remote(
    url: str, token: str | None, since: int | None, wanted: Callable[[Frame], bool], view: View,
    once: bool, interval: float, stop: threading.Event,
) -> None:  # fmt: skip
    """Follow until stopped; a site that cannot be reached is retried with backoff, a refusal
    (wrong address or token) ends it."""
    site = Site(url, token)
    shown = Shown(since, wanted, view)
    attempt = 0
    while not stop.is_set():
        try:
            if shown.last is not None:
                while len(page := site.events(shown.last)) == PAGE:
                    shown.frames(page)
                shown.frames(page)
            if once:
                break
            with site.listen(shown.last) as websocket:
                if attempt:
                    view.status(f"{site.url}: reconnected after sequence {shown.last}")
                attempt = 0
                _listen(websocket, shown, interval, stop)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code in REFUSED_CLOSE_CODES:
                raise SystemExit(f"fastmon-tail: {site.url} refused the websocket: "
                                 f"close code {exc.rcvd.code}") from None  # fmt: skip
            attempt = _wait(attempt, site, exc, view, stop)
        except (urllib.error.HTTPError, InvalidStatus) as exc:
            code = exc.code if isinstance(exc, urllib.error.HTTPError) else exc.response.status_code
            if code in FATAL_STATUSES:
                raise SystemExit(f"fastmon-tail: {site.url} refused: HTTP {code}") from None
            attempt = _wait(attempt, site, exc, view, stop)
        except (OSError, WebSocketException, ValueError) as exc:
            attempt = _wait(attempt, site, exc, view, stop)
    view.tick(final=True)


class Shown:
    """The last sequence shown, and each event shown once, in order."""

    def __init__(self, since: int | None, wanted: Callable[[Frame], bool], view: View) -> None:
        self.last, self.wanted, self.view = since, wanted, view

    def frames(self, frames: list[Frame]) -> None:
        for frame in frames:
            if self.last is None or frame["sequence"] > self.last:
                if self.wanted(frame):
                    self.view.event(frame)
                self.last = frame["sequence"]

    def caught_up(self, sequence: int) -> None:
        if self.last is None or sequence > self.last:
            self.last = sequence


def _listen(
    websocket: ClientConnection, shown: Shown, interval: float, stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            message: dict[str, Any] = json.loads(websocket.recv(timeout=interval))
        except TimeoutError:
            shown.view.tick(final=False)
            continue
        if message.get("type") == "events":
            shown.frames(message["events"])
        elif message.get("type") == "live":
            shown.caught_up(message["sequence"])
        elif message.get("type") == "skipped":
            shown.view.status(f"events {message['after'] + 1}..{message['upto']} were skipped "
                              "(older than the site replays)")  # fmt: skip


def _wait(attempt: int, site: Site, exc: Exception, view: View, stop: threading.Event) -> int:
    delay = backoff_delay(attempt, cap=10.0, floor=0.5)
    view.status(f"{site.url}: {first_line(exc)}; retry in {delay:.1f}s")
    stop.wait(delay)
    return attempt + 1
