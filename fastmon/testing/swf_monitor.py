"""A stand-in for swf-monitor's REST API on loopback: a real HTTP server answering the way
swf-monitor does (``docs/wire-formats.md``) for the endpoints fastmon and the fast-processing
agent call, with the rules swf-monitor enforces, recording every request. ``stop`` and
``start`` again on the same port make a monitor that goes away and comes back.

- ``POST /api/systemagents/heartbeat/``: the agent's row made or updated by ``instance_name``
  (required), 201 or 200; ``agent_type``, ``status``, ``description`` and ``namespace`` are
  replaced at every heartbeat (an absent namespace becomes null), ``operational_state``,
  ``pid``, ``hostname`` only when sent; a value longer than its column (``agent_type`` 20,
  ``status`` 10) is the database's error, a 500.
- ``GET /api/systemagents/``: every agent's row (a list, unpaginated), what ``testbed
  status`` reads.
- ``POST /api/fastmon-files/``: 201 with the new ``tf_file_id`` (swf-monitor's, not the
  sender's); 400 for a ``tf_filename`` it already has, or for an ``stf_file`` it does not know
  (when ``known_stfs`` is set: the data agent registers STFs).
- ``GET /api/fastmon-files/?tf_filename=|stf_filename=`` (a list, unpaginated) and
  ``GET /api/fastmon-files/<tf_file_id>/`` (404 for an id it never made).
- ``PATCH /api/fastmon-files/<tf_file_id>/``: ``status``, ``metadata``.
- ``POST /api/tf-slices/``: a TFSlice must point to an existing FastMonFile (its
  ``fastmon_file`` is that sample's ``tf_filename``), or 400 ``{"fastmon_file": [...]}``.
- ``GET /api/workflow-executions/<execution_id>/``: its ``parameter_values`` (from
  ``workflow_executions``), 404 for one it does not have.

``overrides`` makes it answer one sample's POSTs otherwise (a 500, a 200 without the sample).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from fastmon.swf_monitor.client import FASTMON_FILES_PATH, HEARTBEAT_PATH

TF_SLICES_PATH = "/api/tf-slices/"
WORKFLOW_EXECUTIONS_PATH = "/api/workflow-executions/"
SYSTEM_AGENTS_PATH = "/api/systemagents/"
_AGENT_COLUMNS = {"instance_name": 100, "agent_type": 20, "status": 10,
                  "operational_state": 20, "hostname": 100, "namespace": 100}  # fmt: skip


class SwfMonitorStandIn:
    def __init__(self, known_stfs: set[str] | None = None) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.fastmon_files: dict[str, dict[str, Any]] = {}  # by tf_filename
        self.tf_slices: dict[tuple[str, int], dict[str, Any]] = {}
        self.workflow_executions: dict[str, dict[str, Any]] = {}  # id -> parameter_values
        self.system_agents: dict[str, dict[str, Any]] = {}  # by instance_name
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
                self.answer("POST")

            def do_PATCH(self) -> None:
                self.answer("PATCH")

            def answer(self, method: str) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stand_in.lock:
                    stand_in.received.append((self.path, dict(self.headers), body))
                    if method == "PATCH":
                        status, answer = stand_in.answer_patch(self.path, body)
                    else:
                        status, answer = stand_in.answer_post(self.path, body)
                self.reply(status, answer)

            def do_GET(self) -> None:
                with stand_in.lock:
                    status, answer = stand_in.answer_get(self.path)
                self.reply(status, answer)

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

    def by_id(self, tf_file_id: str) -> dict[str, Any] | None:
        return next((r for r in self.fastmon_files.values() if r["tf_file_id"] == tf_file_id), None)

    def answer_get(self, path: str) -> tuple[int, Any]:
        url = urlparse(path)
        if url.path.startswith(WORKFLOW_EXECUTIONS_PATH):
            execution = unquote(url.path.removeprefix(WORKFLOW_EXECUTIONS_PATH).strip("/"))
            if execution not in self.workflow_executions:
                return 404, {"detail": "No WorkflowExecution matches the given query."}
            return 200, {"execution_id": execution,
                         "parameter_values": self.workflow_executions[execution]}  # fmt: skip
        if url.path == SYSTEM_AGENTS_PATH:
            return 200, list(self.system_agents.values())
        if url.path.startswith(FASTMON_FILES_PATH) and url.path != FASTMON_FILES_PATH:
            row = self.by_id(url.path.removeprefix(FASTMON_FILES_PATH).strip("/"))
            return (200, row) if row else (404, {"detail": "No FastMonFile matches the query."})
        if url.path != FASTMON_FILES_PATH:
            return 404, {"detail": "Not found."}
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        rows = [
            row
            for row in self.fastmon_files.values()
            if row["tf_filename"] == query.get("tf_filename", row["tf_filename"])
            and row["stf_file"] == query.get("stf_filename", row["stf_file"])
        ]
        return 200, rows

    def answer_post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == TF_SLICES_PATH:
            return self.answer_tf_slice(body)
        if path == HEARTBEAT_PATH:
            return self.answer_heartbeat(body)
        if path != FASTMON_FILES_PATH:
            return 201, {}
        name = body.get("tf_filename")
        if not isinstance(name, str) or not name:
            return 400, {"tf_filename": ["This field is required."]}
        if name in self.overrides:
            return self.overrides[name]
        if name in self.fastmon_files:
            return 400, {"tf_filename": ["fast mon file with this tf filename already exists."]}
        if self.known_stfs is not None and body.get("stf_file") not in self.known_stfs:
            stf = body.get("stf_file")
            return 400, {"stf_file": [f"Object with stf_filename={stf} does not exist."]}
        row = {**body, "tf_file_id": str(uuid.uuid4())}  # the server's id, whatever was sent
        self.fastmon_files[name] = row
        return 201, row

    def answer_heartbeat(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("instance_name")
        if not name:
            return 400, {"instance_name": ["This field is required."]}
        row = {"instance_name": name, "agent_type": body.get("agent_type", "other"),
               "description": body.get("description", ""), "status": body.get("status", "OK"),
               "namespace": body.get("namespace"), "last_heartbeat": time.time()}  # fmt: skip
        row |= {k: body[k] for k in ("operational_state", "pid", "hostname") if k in body}
        if any(len(str(row.get(k) or "")) > n for k, n in _AGENT_COLUMNS.items()):
            return 500, {"detail": "value too long for type character varying"}
        created = name not in self.system_agents
        self.system_agents[name] = {**self.system_agents.get(name, {}), **row}
        return (201 if created else 200), self.system_agents[name]

    def answer_patch(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        row = self.by_id(path.removeprefix(FASTMON_FILES_PATH).strip("/"))
        if row is None or not path.startswith(FASTMON_FILES_PATH):
            return 404, {"detail": "No FastMonFile matches the query."}
        row.update({k: v for k, v in body.items() if k in ("status", "metadata")})
        return 200, row

    def answer_tf_slice(self, body: dict[str, Any]) -> tuple[int, Any]:
        sample = body.get("fastmon_file")
        if sample not in self.fastmon_files:
            return 400, {"fastmon_file": [f"Object with tf_filename={sample} does not exist."]}
        slice_id = body.get("slice_id")
        if not isinstance(slice_id, int) or isinstance(slice_id, bool):
            return 400, {"slice_id": ["A valid integer is required."]}
        key = (sample, slice_id)
        if key in self.tf_slices:
            return 400, {"non_field_errors": ["fastmon_file, slice_id must make a unique set."]}
        self.tf_slices[key] = body
        return 201, body

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
