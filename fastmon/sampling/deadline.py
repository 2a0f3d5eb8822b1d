"""A remote read's deadline (REMOTE_READ_DEADLINE_S): one for the whole read of an STF, its
retries, backoff and wait for a host's slot included. A per-operation timeout alone never ends a
read from a server that sends a byte every few seconds, so the reading thread holds its deadline
(``held``) and every socket operation of its HTTP requests waits at most until then
(``http_transport``: headers, TLS handshake and body alike), as does each XRootD call."""

from __future__ import annotations

import math
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from fastmon.conf import fastmon_settings
from fastmon.sampling.roots import RemoteError

_held = threading.local()


class Deadline:
    """The moment a read must be over by, ``seconds`` from now."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def error(self) -> RemoteError:
        return RemoteError(f"not read within REMOTE_READ_DEADLINE_S ({self.seconds:g}s)",
                           transient=False, kind="Deadline")  # fmt: skip

    def timeout(self, per_operation: float | None = None) -> float:
        """The wait allowed for one operation: REMOTE_READ_TIMEOUT_S (or ``per_operation``),
        never past the deadline; ``error()`` once it has passed."""
        left = self.left()
        if left <= 0:
            raise self.error()
        limit = fastmon_settings.REMOTE_READ_TIMEOUT_S if per_operation is None else per_operation
        return min(limit, left)

    def whole_seconds(self) -> int:
        """``timeout()`` for XRootD, which counts in whole seconds."""
        return max(1, math.ceil(self.timeout()))

    @contextmanager
    def held(self) -> Iterator[Deadline]:
        """This thread's socket operations end by the deadline while it is held."""
        outer = getattr(_held, "deadline", None)
        _held.deadline = self
        try:
            yield self
        finally:
            _held.deadline = outer


def _bounded(timeout: float | None) -> float | None:
    deadline: Deadline | None = getattr(_held, "deadline", None)
    return timeout if deadline is None else deadline.timeout(timeout)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self.stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self.stream.start_tls(ssl_context, server_hostname, _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self.stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's own sockets, each operation bounded by the thread's deadline."""

    def __init__(self) -> None:
        self.backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self.backend.connect_tcp(host, port, _bounded(timeout), local_address,
                                                socket_options))  # fmt: skip

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self.backend.connect_unix_socket(path, _bounded(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)


def http_transport(connections: int) -> httpx.HTTPTransport:
    """httpx's transport over sockets bounded by the deadline. httpx takes no network backend,
    so its connection pool is replaced by one like it that has ours."""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=connections,
        max_keepalive_connections=connections, keepalive_expiry=5.0, network_backend=_Backend(),
    )  # fmt: skip
    return transport
