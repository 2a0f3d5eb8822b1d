"""A stand-in for swf-monitor's REST API on loopback: a real HTTP server answering the way
swf-monitor does (``docs/wire-formats.md``) for the endpoints fastmon calls, recording every
request. ``stop`` and ``start`` again on the same port make a monitor that goes away and comes
back.

- ``POST /api/systemagents/heartbeat/``: 201.
- ``POST /api/fastmon-files/``: 201 with the new ``tf_file_id``; 400 for a ``tf_filename`` it
  already has, or for an ``stf_file`` it does not know (when ``known_stfs`` is set).
- ``GET /api/fastmon-files/?tf_filename=``: the matching rows (a list, unpaginated).

``overrides`` makes it answer one sample's POSTs otherwise (a 500, a 200 without the sample).
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from fastmon.outbox.swf_monitor import FASTMON_FILES_PATH


class SwfMonitorStandIn:
    def __init__(self, known_stfs: set[str] | None = None) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.fastmon_files: dict[str, dict[str, Any]] = {}
        self.known_stfs = known_stfs
        # tf_filename -> (status, JSON body) to answer its POSTs with instead, while it is here.
        self.overrides: dict[str, tuple[int, Any]] = {}
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posts(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for where, _, body in self.received if where == path]

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stand_in.lock:
                    stand_in.received.append((self.path, dict(self.headers), body))
                    status, answer = stand_in.answer_post(self.path, body)
                self.reply(status, answer)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                name = parse_qs(url.query).get("tf_filename", [""])[0]
                with stand_in.lock:
                    rows = [row for key, row in stand_in.fastmon_files.items() if key == name]
                self.reply(200 if url.path == FASTMON_FILES_PATH else 404, rows)

            def reply(self, status: int, answer: Any) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer_post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path != FASTMON_FILES_PATH:
            return 201, {}
        name = body.get("tf_filename")
        if name in self.overrides:
            return self.overrides[name]
        if name in self.fastmon_files:
            return 400, {"tf_filename": ["fast mon file with this tf filename already exists."]}
        if self.known_stfs is not None and body.get("stf_file") not in self.known_stfs:
            stf = body.get("stf_file")
            return 400, {"stf_file": [f"Object with stf_filename={stf} does not exist."]}
        row = {**body, "tf_file_id": str(uuid.uuid4())}
        self.fastmon_files[name] = row
        return 201, row

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
