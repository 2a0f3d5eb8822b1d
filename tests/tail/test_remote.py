"""``fastmon-tail --url`` against hostile sites: real HTTP and websocket servers started here that
redirect elsewhere, say the websocket is elsewhere, answer what fastmon never would, or never stop
answering. The token reaches --url's origin only; every bad answer ends in one line on stderr and
exit status 3, never a traceback, and no answer is read past its bound."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from fastmon.tail.answers import MAX_ANSWER_BYTES

TOKEN = "s3cret-token"
SCRIPT = str(Path(sys.executable).parent / "fastmon-tail")

Answer = Callable[["HostileHttp", BaseHTTPRequestHandler], None]


class HostileHttp:
    """An HTTP server on 127.0.0.1 answering every GET with ``answer``; it keeps each request's
    path and headers, and how many body bytes it managed to send."""

    def __init__(self, answer: Answer) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sent = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append((self.path, dict(self.headers.items())))
                answer(site, self)

            def log_message(self, *args: Any) -> None:
                """Quiet: the test says what went wrong."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fastmon/"

    def tokens(self) -> list[str | None]:
        return [headers.get("Authorization") for _, headers in self.requests]


class HostileWebsocket:
    """A websocket server on 127.0.0.1 sending ``messages`` to each client (or answering the
    handshake with ``respond``); it keeps each handshake's headers."""

    def __init__(
        self, messages: list[str], respond: Callable[[ServerConnection], Response] | None = None
    ) -> None:
        self.handshakes: list[dict[str, str]] = []

        def process_request(connection: ServerConnection, request: Request) -> Response | None:
            self.handshakes.append(dict(request.headers.raw_items()))
            return respond(connection) if respond else None

        def handler(connection: ServerConnection) -> None:
            for message in messages:
                connection.send(message)
            with contextlib.suppress(ConnectionClosed):
                for _ in connection:  # until the client goes
                    pass

        self.server = serve(handler, "127.0.0.1", 0, process_request=process_request)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fastmon/"


@pytest.fixture
def servers() -> Iterator[list[HostileHttp | HostileWebsocket]]:
    """Servers a test starts, shut down after it."""
    started: list[HostileHttp | HostileWebsocket] = []
    yield started
    for server in started:
        server.server.shutdown()


def http(servers: list, answer: Answer) -> HostileHttp:
    servers.append(site := HostileHttp(answer))
    return site


def websocket(servers: list, *messages: str, respond: Any = None) -> HostileWebsocket:
    servers.append(site := HostileWebsocket(list(messages), respond))
    return site


def reply(
    handler: BaseHTTPRequestHandler, status: int, body: bytes = b"[]", **headers: str
) -> None:
    handler.send_response(status)
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    for name, value in {"Content-Type": "application/json", **named}.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def tail(url: str, *args: str, as_json: bool = True) -> subprocess.CompletedProcess[str]:
    """The console script, as a shifter runs it (no Django settings), to its end."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    argv = [SCRIPT, "--url", url, "--token", TOKEN, "--interval", "0.2", *args]
    argv += ["--json"] if as_json else []
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd="/")


def assert_bad_answer(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit status 3 and one line saying why, with no traceback."""
    assert result.returncode == 3, (result.returncode, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("fastmon-tail: "), line
    assert all(word in line for word in words), line
    return line


# -- the token stays with the origin --url names -------------------------------------------------


@pytest.mark.parametrize("elsewhere", ["another port", "another host name"])
def test_a_redirect_to_another_origin_is_refused_and_gets_no_token(
    servers: list, elsewhere: str
) -> None:
    other = http(servers, lambda site, handler: reply(handler, 200))

    def redirect(site: HostileHttp, handler: BaseHTTPRequestHandler) -> None:
        if handler.headers["Host"] != f"127.0.0.1:{site.port}":
            reply(handler, 200)  # reached under another name: the redirect was followed
        elif elsewhere == "another port":
            reply(handler, 302, Location=f"http://127.0.0.1:{other.port}/fastmon/api/events/")
        else:
            reply(handler, 302, Location=f"http://localhost:{site.port}{handler.path}")

    site = http(servers, redirect)
    line = assert_bad_answer(tail(site.url, "--since", "0"), "redirected (HTTP 302)",
                             "another origin: not followed")  # fmt: skip
    assert "http://localhost:" in line or f"127.0.0.1:{other.port}" in line
    assert site.tokens() == [f"Token {TOKEN}"]  # the one request to --url's origin
    assert other.requests == []


def test_a_redirect_within_the_origin_is_followed_with_the_token(servers: list) -> None:
    def moved(site: HostileHttp, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/fastmon/api/events/"):
            reply(handler, 301, Location=handler.path.replace("/fastmon/", "/moved/fastmon/"))
        else:
            body = [{"sequence": 1, "kind": "alarm", "run_number": None, "payload": {}}]
            reply(handler, 200, json.dumps(body).encode())

    site = http(servers, moved)
    result = tail(site.url, "--since", "0", "--once")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["sequence"] for line in result.stdout.splitlines()] == [1]
    assert [path.split("?")[0] for path, _ in site.requests] == [
        "/fastmon/api/events/", "/moved/fastmon/api/events/",
    ]  # fmt: skip
    assert site.tokens() == [f"Token {TOKEN}"] * 2


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_a_websocket_at_another_origin_is_refused(servers: list, scheme: str) -> None:
    """The API's Link names the websocket; at another origin (another port; the same port over
    TLS) fastmon-tail does not go, so its token does not either."""
    elsewhere = websocket(servers, '{"type": "live", "sequence": 0}')

    def link(site: HostileHttp, handler: BaseHTTPRequestHandler) -> None:
        port = elsewhere.port if scheme == "ws" else site.port
        reply(handler, 200, Link=f'<{scheme}://127.0.0.1:{port}/fastmon/ws/live/>; rel="live"')

    site = http(servers, link)
    assert_bad_answer(tail(site.url, "--since", "0"), "/events says the websocket is at",
                      "another origin: not followed")  # fmt: skip
    assert elsewhere.handshakes == []


def test_a_websocket_redirect_is_not_followed(servers: list) -> None:
    elsewhere = websocket(servers, '{"type": "live", "sequence": 0}')

    def redirect(connection: ServerConnection) -> Response:
        response = connection.respond(302, "")
        response.headers["Location"] = f"ws://127.0.0.1:{elsewhere.port}/fastmon/ws/live/"
        return response

    site = websocket(servers, respond=redirect)
    assert_bad_answer(tail(site.url), "the websocket redirected (HTTP 302)", "not followed")
    assert [h.get("Authorization") for h in site.handshakes] == [f"Token {TOKEN}"]
    assert elsewhere.handshakes == []


# -- answers that are not fastmon's -------------------------------------------------------------


def event(sequence: Any, **fields: Any) -> dict[str, Any]:
    return {"sequence": sequence, "kind": "alarm", "run_number": None, "payload": {}, **fields}


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"<html>Please log in</html>", "text/html", ["/events (text/html) is not JSON"]),
        (b"[" * 100_000, "application/json", ["/events (application/json) is not JSON"]),
        (json.dumps({"detail": "x"}).encode(), "application/json", ["not a list of events"]),
        (b"[1, 2]", "application/json", ["event 0 is a JSON number, not an object"]),
        (json.dumps([{"kind": "run"}]).encode(), "application/json", ["event 0 has no sequence"]),
        (json.dumps([event("abc")]).encode(), "application/json",
         ['has sequence "abc", not a whole number']),
        (json.dumps([event(3), event(2)]).encode(), "application/json",
         ["sequence 2 after 3: not in order"]),
        (json.dumps([event(1, kind=["run"])]).encode(), "application/json",
         ['has kind ["run"], not a string']),
    ],
)  # fmt: skip
def test_an_events_answer_that_is_not_fastmons_ends_in_one_line(
    servers: list, body: bytes, content_type: str, words: list[str]
) -> None:
    site = http(servers, lambda _, handler: reply(handler, 200, body, Content_Type=content_type))
    assert_bad_answer(tail(site.url, "--since", "0", "--once"), *words)


def test_an_endless_events_answer_is_read_to_a_bound(servers: list) -> None:
    def endless(site: HostileHttp, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        chunk = b"[" + b" " * (1024 * 1024 - 1)
        try:
            while True:
                handler.wfile.write(chunk)
                site.sent += len(chunk)
        except OSError:
            pass  # the client stopped reading

    site = http(servers, endless)
    assert_bad_answer(tail(site.url, "--since", "0"), f"more than {MAX_ANSWER_BYTES} bytes")
    # What the kernel's socket buffers took besides the bound, and no more.
    assert MAX_ANSWER_BYTES < site.sent < MAX_ANSWER_BYTES + 32 * 1024 * 1024


@pytest.mark.parametrize(
    ("sent", "words"),
    [
        ('{"type": "events", "events": [{"kind": "run", "run_number": 1}]}',
         ["a websocket events message, event 0 has no sequence"]),
        (json.dumps({"type": "events", "events": [event("abc")]}), ['sequence "abc"']),
        ("[1, 2]", ["a websocket message is a JSON list, not an object"]),
        (json.dumps({"type": "events", "events": event(1)}),
         ["a websocket events message holds a JSON object, not a list of events"]),
        ('{"type": "events", "events": [{"sequence": 1.5, "kind": "run"}]}', ["sequence 1.5"]),
        ('{"type": "events", "events": [{"sequence": 1, "kind": "run"}]}',
         ["event 0 has no run_number"]),
        ('{"type": "live", "sequence": "x"}', ['a websocket live message has sequence "x"']),
        ('{"type": "skipped", "after": null, "upto": 3}', ["has after null"]),
        ("Internal error", ["a websocket message is not JSON"]),
    ],
)  # fmt: skip
def test_a_websocket_message_that_is_not_fastmons_ends_in_one_line(
    servers: list, sent: str, words: list[str]
) -> None:
    site = websocket(servers, '{"type": "live", "sequence": 0}', sent)
    assert_bad_answer(tail(site.url), *words)  # no --since: straight to the websocket
    assert [h.get("Authorization") for h in site.handshakes] == [f"Token {TOKEN}"]


def test_a_websocket_message_over_the_bound_ends_in_one_line(servers: list) -> None:
    site = websocket(servers, '{"type": "live", "sequence": 0}', "x" * (MAX_ANSWER_BYTES + 1))
    assert_bad_answer(tail(site.url), "the websocket broke off", "1009")


def test_what_a_site_sends_cannot_drive_the_terminal(servers: list) -> None:
    hostile = event(1, payload={"severity": "\x1b[2J", "message": "\u202edetarepo \x07"})
    site = http(servers, lambda _, handler: reply(handler, 200, json.dumps([hostile]).encode()))
    result = tail(site.url, "--since", "0", "--once", as_json=False)  # the table, as lines
    assert result.returncode == 0, result.stderr
    assert "#1 ALARM \\x1b[2J: \\u202edetarepo \\x07" in result.stdout
    assert not {"\x1b", "\x07", "\u202e"} & set(result.stdout)
