"""``fastmon_tail --url``: a served site's live events, with no database. The API's
``/events`` catches up from the last sequence shown; then the websocket carries what comes
next. After a disconnect (a server restart, a network cut) it does the same again from its last
sequence, so nothing is missed, and a sequence already shown is never shown twice.

The token goes to the origin of ``--url`` only: a redirect within it is followed, a redirect or a
websocket ``Link`` to another origin is refused (``answers.BadAnswer``), as is every answer that
is not fastmon's."""

from __future__ import annotations

import http.client
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import IO, Any

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHeader,
    InvalidStatus,
    NegotiationError,
    WebSocketException,
)
from websockets.sync.client import ClientConnection, connect

from fastmon.retry import backoff_delay
from fastmon.tail.answers import (
    MAX_ANSWER_BYTES,
    BadAnswer,
    Fatal,
    decoded,
    events_page,
    message,
    same_origin,
)
from fastmon.tail.render import PAGE, Frame, View, first_line

# Answers that waiting will not change: a wrong address or token; the websocket's refusals
# (4403: a login is needed, 4400: a bad query).
FATAL_STATUSES = {401, 403, 404}
REFUSED_CLOSE_CODES = {4400, 4403}
# Closes fastmon-tail sends when a websocket message breaks the protocol, is not UTF-8 text, or
# is over MAX_ANSWER_BYTES.
UNUSABLE_CLOSE_CODES = {1002, 1007, 1009}


class Site:
    """fastmon's API and websocket at ``url`` (fastmon's address in the site)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url if url.endswith("/") else f"{url}/"
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        self.opener = urllib.request.build_opener(_WithinOrigin())
        # The README's wiring puts the websocket at <fastmon>/ws/live/; the API says where it
        # really is (its Link header) once asked.
        self.websocket = _websocket_url(f"{self.url}ws/live/")

    def events(self, since: int) -> list[Frame]:
        query = urllib.parse.urlencode({"since": since, "limit": PAGE})
        request = urllib.request.Request(f"{self.url}api/events/?{query}", headers=self.headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                self._live(response.headers.get("Link", ""))
                body = response.read(MAX_ANSWER_BYTES + 1)
                kind = response.headers.get_content_type()
        except (OSError, http.client.IncompleteRead):
            raise  # the network, or a server going away: retried
        except (http.client.HTTPException, ValueError) as exc:  # no HTTP, a bad Location
            raise BadAnswer(f"/events: {first_line(exc)[:120]}") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise BadAnswer(f"/events sent more than {MAX_ANSWER_BYTES} bytes; not read further")
        return events_page(decoded(body, f"/events ({kind})"), since)

    def listen(self, since: int | None) -> ClientConnection:
        query = "" if since is None else f"?since={since}"
        return connect(f"{self.websocket}{query}", additional_headers=self.headers,
                       open_timeout=10, max_size=MAX_ANSWER_BYTES,
                       create_connection=_NotRedirected)  # fmt: skip

    def _live(self, link: str) -> None:
        if live := re.search(r'<([^>]+)>;\s*rel="live"', link):
            where = urllib.parse.urljoin(self.websocket, live[1])
            if not same_origin(where, self.url):
                raise BadAnswer(f"/events says the websocket is at {where}, another origin: "
                                "not followed (the token is for --url's only)")  # fmt: skip
            self.websocket = _websocket_url(where)


class _WithinOrigin(urllib.request.HTTPRedirectHandler):
    """A redirect is followed (with the token) within the origin, refused out of it."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
        headers: http.client.HTTPMessage, newurl: str,
    ) -> urllib.request.Request | None:  # fmt: skip
        if not same_origin(newurl, req.full_url):
            raise BadAnswer(f"/events redirected (HTTP {code}) to {newurl}, another origin: not "
                            "followed (the token is for --url's only)")  # fmt: skip
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _NotRedirected(ClientConnection):
    """The websocket's handshake, never redirected: the API's Link says where it is, and the
    websockets library would follow a redirect (in some versions with the token)."""

    def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().handshake(*args, **kwargs)
        except InvalidStatus as exc:
            if 300 <= exc.response.status_code < 400:
                where = exc.response.headers.get("Location", "nowhere")
                raise BadAnswer(f"the websocket redirected (HTTP {exc.response.status_code}) "
                                f"to {where}: not followed") from None  # fmt: skip
            raise


def follow_remote(
    url: str, token: str | None, since: int | None, wanted: Callable[[Frame], bool], view: View,
    once: bool, interval: float, stop: threading.Event,
) -> None:  # fmt: skip
    """Follow until stopped; a site that cannot be reached is retried with backoff. A refusal
    (wrong address or token) or an answer it will not use ends it (``Fatal``)."""
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
                raise Fatal(
                    f"{site.url} refused the websocket: close code {exc.rcvd.code}"
                ) from None
            if exc.sent is not None and exc.sent.code in UNUSABLE_CLOSE_CODES:
                raise BadAnswer(f"{site.url}: the websocket broke off ({first_line(exc)}): its "
                                f"messages must be JSON text of at most {MAX_ANSWER_BYTES} "
                                "bytes") from None  # fmt: skip
            attempt = _wait(attempt, site, exc, view, stop)
        except (urllib.error.HTTPError, InvalidStatus) as exc:
            code = exc.code if isinstance(exc, urllib.error.HTTPError) else exc.response.status_code
            if code in FATAL_STATUSES:
                raise Fatal(f"{site.url} refused: HTTP {code}") from None
            if code < 400:  # a redirect not followed, or a page where a websocket should be
                raise BadAnswer(f"{site.url}: HTTP {code} instead of fastmon's answer") from None
            attempt = _wait(attempt, site, exc, view, stop)
        except (InvalidHeader, NegotiationError) as exc:
            raise BadAnswer(f"{site.url}: not fastmon's websocket ({first_line(exc)})") from None
        except (OSError, http.client.IncompleteRead, WebSocketException) as exc:
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
            received = message(websocket.recv(timeout=interval))
        except TimeoutError:
            shown.view.tick(final=False)
            continue
        if received.get("type") == "events":
            shown.frames(received["events"])
        elif received.get("type") == "live":
            shown.caught_up(received["sequence"])
        elif received.get("type") == "skipped":
            shown.view.status(f"events {received['after'] + 1}..{received['upto']} were skipped "
                              "(older than the site replays)")  # fmt: skip


def _websocket_url(url: str) -> str:
    """``url`` as a websocket address (http -> ws, https -> wss), without query or fragment."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return parts._replace(scheme=scheme, query="", fragment="").geturl()


def _wait(attempt: int, site: Site, exc: Exception, view: View, stop: threading.Event) -> int:
    delay = backoff_delay(attempt, cap=10.0, floor=0.5)
    view.status(f"{site.url}: {first_line(exc)}; retry in {delay:.1f}s")
    stop.wait(delay)
    return attempt + 1
