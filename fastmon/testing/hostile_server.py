"""A hostile HTTP data server, for tests and benchmarks of remote reads: a real socket server
over a directory that misbehaves on purpose, one way per server (``mode``):

- ``honest``: HEAD gives the size, a ranged GET its first range (206), as a server of one range
  an answer does; the others build on it;
- ``wrong-range``: a 206 whose ``Content-Range`` is the span just after the one asked for;
- ``endless-multipart``: a ``multipart/byteranges`` answer that never sends a delimiter;
- ``drip``: every answer, headers included, one byte every ``drip_every`` seconds;
- ``redirect``: a 302 to ``redirect_to`` with the request's path appended: to another host (a
  pool; two such servers to each other: a loop), or to a path of its own outside a root, which
  it then answers honestly.

It records what it was asked (``seen``) and how many bytes it sent (``sent``), listens on
``host`` (``::1`` for IPv6), and stops writing the moment it is stopped.
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

MODES = ("honest", "wrong-range", "endless-multipart", "drip", "redirect")
BOUNDARY = "fastmon-hostile"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # as requested, still percent-encoded
    headers: dict[str, str]  # names in lower case


class HostileServer:
    """``with HostileServer(root, mode) as server:`` serves ``root`` at ``server.url``."""

    def __init__(
        self,
        root: Path,
        mode: str,
        *,
        host: str = "127.0.0.1",
        drip_every: float = 3.0,
        redirect_to: str = "",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.root, self.mode = root.resolve(), mode
        self.drip_every, self.redirect_to = drip_every, redirect_to
        self.seen: list[Seen] = []
        self.sent = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (socketserver.ThreadingTCPServer,), {
            "address_family": family, "daemon_threads": True, "allow_reuse_address": True,
        })  # fmt: skip
        self.server = server_class((host, 0), _handler(self))
        port = self.server.server_address[1]
        self.url = f"http://[{host}]:{port}/" if family == socket.AF_INET6 else \
            f"http://{host}:{port}/"  # fmt: skip

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def asked(self, method: str = "GET") -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.method == method]

    def answer(self, method: str, target: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
        """The head and body of the answer to one request, as this server's mode has it."""
        with self._lock:
            self.seen.append(Seen(method, target, headers))
        if self.mode == "redirect" and self._redirects(target):
            location = self.redirect_to + target.lstrip("/")
            return _head(302, {"Location": location, "Content-Length": "0"}), b""
        path = (self.root / unquote(urlsplit(target).path).lstrip("/")).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return _head(404, {"Content-Length": "0"}), b""
        data = path.read_bytes()
        if method == "HEAD":
            return _head(200, {"Content-Length": str(len(data))}), b""
        found = re.match(r"bytes=(\d+)-(\d+)", headers.get("range", ""))
        if not found:
            return _head(200, {"Content-Length": str(len(data))}), data
        start, end = int(found[1]), int(found[2]) + 1
        if self.mode == "wrong-range":  # the span after the one asked for (at the end: the first)
            length = end - start
            start, end = (end, end + length) if end + length <= len(data) else (0, length)
        if self.mode == "endless-multipart":
            kind = f"multipart/byteranges; boundary={BOUNDARY}"
            return _head(206, {"Content-Type": kind}), b""  # the body: ``endless``
        answer = {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}",
                  "Content-Length": str(end - start)}  # fmt: skip
        return _head(206, answer), data[start:end]

    def _redirects(self, target: str) -> bool:
        """All requests are redirected but those under the path of its own ``redirect_to``
        names."""
        own = self.redirect_to.removeprefix(self.url)
        return own == self.redirect_to or not target.lstrip("/").startswith(own)

    def count(self, sent: int) -> None:
        with self._lock:
            self.sent += sent


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Hostile", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _handler(server: HostileServer) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        """One request a connection, answered as the server's mode has it."""

        def handle(self) -> None:
            request = self.rfile.readline(65536).decode("latin-1").split()
            headers: dict[str, str] = {}
            while (line := self.rfile.readline(65536).decode("latin-1").strip()) and \
                    len(headers) < 100:  # fmt: skip
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if len(request) != 3:
                return
            head, body = server.answer(request[0], request[1], headers)
            try:
                if server.mode == "drip":
                    self._drip(head + body)
                elif server.mode == "endless-multipart" and request[0] == "GET":
                    self._send(head)
                    self._endless()
                else:
                    self._send(head + body)
            except OSError:
                pass  # the client went away: what a hostile server lives with

        def _send(self, data: bytes) -> None:
            self.connection.sendall(data)
            server.count(len(data))

        def _drip(self, data: bytes) -> None:
            for at in range(len(data)):
                self._send(data[at : at + 1])
                if server.stopping.wait(server.drip_every):
                    return

        def _endless(self) -> None:
            filler = b"x" * 65536  # never "--" + BOUNDARY
            while not server.stopping.is_set():
                self._send(filler)

    return Handler
