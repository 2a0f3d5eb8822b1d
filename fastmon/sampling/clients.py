"""The two remote readers: the size of a file and Adler-32 of byte spans of it, reading only
those spans, within the read's deadline (``deadline``). Memory stays bounded: XRootD vector
reads are cut into requests of at most REMOTE_READ_BATCH_BYTES, HTTP bodies are streamed and
bounded (``byteranges``). A redirect, HTTP's or XRootD's, must lead under the data roots.
(Reading a step ahead in a thread of its own was tried: on two cores it made the HTTP path a
third slower and the XRootD path no faster.)"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin

import httpx

from fastmon.conf import fastmon_settings
from fastmon.sampling import byteranges
from fastmon.sampling.checksums import Checksums, Spans
from fastmon.sampling.deadline import Deadline, http_transport
from fastmon.sampling.roots import (
    HTTP_PERMANENT,
    XROOTD_ELEMENT,
    XROOTD_MAX_ELEMENTS,
    XROOTD_PERMANENT,
    RemoteError,
    RemoteURL,
    bearer_token,
    parse_remote,
    pieces,
    under_roots,
)

logger = logging.getLogger("fastmon.sampling")


class XRootDReader:
    """One file over XRootD: stat, then vector reads of the spans. The client follows a
    redirect to a data server as it opens the file; nothing is read unless that server is under
    the data roots."""

    def __init__(self, url: RemoteURL, roots: Sequence[RemoteURL], deadline: Deadline) -> None:
        try:
            from XRootD import client
            from XRootD.client.flags import OpenFlags
        except ImportError:
            raise RemoteError("root:// needs the xrootd bindings (pip install fastmon[xrootd])",
                              transient=False, kind="NoXRootD") from None  # fmt: skip
        self.deadline = deadline
        self.file = client.File()
        _check(self.file.open(str(url), OpenFlags.READ, timeout=deadline.whole_seconds())[0])
        try:
            landed = parse_remote(self.file.get_property("LastURL") or "")
        except ValueError:
            landed = None
        if landed is None or not under_roots(landed, roots):
            self.close()
            raise RemoteError("redirected off the data roots: not read there", transient=False,
                              kind="Redirect")  # fmt: skip

    def size(self) -> int:
        status, info = self.file.stat(timeout=self.deadline.whole_seconds())
        _check(status)
        return int(info.size)

    def read_at(self, offset: int, length: int) -> bytes:
        """A few bytes (a trailer, an index): one plain read."""
        status, data = self.file.read(offset=offset, size=length,
                                      timeout=self.deadline.whole_seconds())  # fmt: skip
        _check(status)
        return bytes(data)

    def adler32(self, spans: Spans, sums: Checksums | None = None) -> list[int]:
        sums = sums or Checksums(spans)
        for chunks in map(self._vector_read, self._batches(spans)):
            for chunk in chunks:
                sums.feed(chunk.offset, chunk.buffer)
        return sums.results()

    @staticmethod
    def _batches(spans: Spans) -> Iterator[list[tuple[int, int]]]:
        """Vector read requests of at most REMOTE_READ_BATCH_BYTES and 1024 elements."""
        batch: list[tuple[int, int]] = []
        size, limit = 0, fastmon_settings.REMOTE_READ_BATCH_BYTES
        for piece in pieces(spans, XROOTD_ELEMENT):
            if batch and (size + piece[1] > limit or len(batch) == XROOTD_MAX_ELEMENTS):
                yield batch
                batch, size = [], 0
            batch.append(piece)
            size += piece[1]
        if batch:
            yield batch

    def _vector_read(self, batch: list[tuple[int, int]]) -> list[Any]:
        status, result = self.file.vector_read(chunks=batch,
                                               timeout=self.deadline.whole_seconds())  # fmt: skip
        _check(status)
        return list(result.chunks)

    def close(self) -> None:
        self.file.close(timeout=max(1, int(fastmon_settings.REMOTE_READ_TIMEOUT_S)))


def _check(status: Any) -> None:
    if not status.ok:
        raise RemoteError(status.message.strip(), kind="XRootDError",
                          transient=status.errno not in XROOTD_PERMANENT)  # fmt: skip


# One client per host and process (connections kept alive), and whether the host answers
# several ranges in one response.
_http_clients: dict[tuple[str, str, int], httpx.Client] = {}
_single_range_hosts: set[tuple[str, str, int]] = set()
_clients_lock = threading.Lock()
# Spans shorter than this go several to a request.
MULTIRANGE_BELOW = 1024 * 1024
MAX_REDIRECTS = 5
_BOUNDARY = re.compile(r"boundary=\"?([^\";]+)\"?")


class HttpReader:
    """One file over HTTP(S): its size, then ranged GETs of the spans. A redirect is followed
    only to a URL under the data roots (a dCache door's pools are named among them), so the
    bearer token goes nowhere else."""

    def __init__(self, url: RemoteURL, roots: Sequence[RemoteURL], deadline: Deadline) -> None:
        self.url, self.roots, self.deadline = url, roots, deadline
        self.key = (url.scheme, url.host, url.port)
        token = bearer_token()
        # Ranges are of the bytes as stored: an encoded answer is refused, never decoded.
        self.headers = {"Accept-Encoding": "identity"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def size(self) -> int:
        with self._send("HEAD", {}) as answer:
            answer.read()  # nothing (a HEAD): its end, so the connection is kept
            length = answer.headers.get("content-length", "")
        if not length.isdigit():
            raise RemoteError("the server gives no Content-Length", transient=False,
                              kind="HTTPError")  # fmt: skip
        return int(length)

    def read_at(self, offset: int, length: int) -> bytes:
        """A few bytes (a trailer, an index): one ranged GET, its body at most ``length``."""
        if length <= 0:
            return b""
        sums = Checksums([(offset, offset + length)], keep=True)
        self._get([(offset, offset + length)], sums)
        sums.results()  # every byte came, or RemoteError
        assert sums.kept is not None
        return bytes(sums.kept[0])

    def adler32(self, spans: Spans, sums: Checksums | None = None) -> list[int]:
        """Small spans several to a request (a round trip saved each), large ones one to a
        request (the transfer dwarfs the round trip, and a server sends a single range
        straight from the file, a multipart answer through its buffers). Every answer
        completes a span at least (``byteranges``): at most one request a span."""
        sums = sums or Checksums(spans)
        todo = [span for span in spans if span[1] > span[0]]
        while todo:
            small = [span for span in todo if span[1] - span[0] < MULTIRANGE_BELOW]
            several = len(small) > 1 and self.key not in _single_range_hosts
            self._get(small if several else todo[:1], sums)
            todo = sums.missing()
        return sums.results()

    def _get(self, spans: Spans, sums: Checksums) -> None:
        ranges = ",".join(f"{start}-{end - 1}" for start, end in spans)
        with self._send("GET", {"Range": f"bytes={ranges}"}) as answer:
            if answer.status_code != 206:  # the whole file: never read it
                raise RemoteError(f"HTTP {answer.status_code}: the server ignores Range",
                                  transient=False, kind="HTTPError")  # fmt: skip
            if answer.headers.get("content-encoding", "identity").lower() != "identity":
                raise RemoteError("the server encodes its answer", transient=False,
                                  kind="HTTPError")  # fmt: skip
            chunks = byteranges.counted(answer.iter_raw(), byteranges.budget(spans))
            kind = answer.headers.get("content-type", "")
            if kind.startswith("multipart/byteranges"):
                boundary = _BOUNDARY.search(kind)
                if not boundary:
                    raise RemoteError("multipart answer without a boundary", transient=False,
                                      kind="BadMultipart")  # fmt: skip
                byteranges.read_parts(chunks, boundary[1].encode(), spans, sums)
                return
            if len(spans) > 1:
                _single_range_hosts.add(self.key)  # one range an answer from now on
            byteranges.read_single(chunks, answer.headers.get("content-range", ""), spans, sums)

    @contextmanager
    def _send(self, method: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """The answer to a request, streamed, redirects followed under the roots; any httpx
        error (a URL or header httpx refuses, a host name IDNA refuses, a lost connection) a
        ``RemoteError``."""
        url = self.url
        try:
            for _ in range(MAX_REDIRECTS + 1):
                client = _client(url)
                request = client.build_request(method, str(url),
                                               headers={**self.headers, **headers})  # fmt: skip
                answer = client.send(request, stream=True)
                try:
                    if not answer.is_redirect:
                        _raise_for(answer)
                        yield answer
                        return
                finally:
                    answer.close()
                url = self._redirected(url, answer.headers["location"])
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, UnicodeError) as exc:
            if self.deadline.left() <= 0:
                raise self.deadline.error() from None
            transient = isinstance(exc, httpx.TransportError) and not isinstance(
                exc, httpx.UnsupportedProtocol)  # fmt: skip
            raise RemoteError(f"{type(exc).__name__}: {exc}", transient=transient,
                              kind="HTTPError") from None  # fmt: skip
        raise RemoteError(f"more than {MAX_REDIRECTS} redirects", transient=False,
                          kind="TooManyRedirects")  # fmt: skip

    def _redirected(self, url: RemoteURL, location: str) -> RemoteURL:
        """Where a redirect leads, when that is under a root. The public reason does not name
        the target (the log does), as a local file's does not name a link's."""
        try:
            target = parse_remote(urljoin(str(url), location), keep_query=True)
        except ValueError:
            target = None
        if target is None or target.protocol != "http" or not under_roots(target, self.roots):
            logger.warning("%s redirects to %r, off the data roots: not followed", url,
                           location[:500])  # fmt: skip
            raise RemoteError("redirected off the data roots: not followed", transient=False,
                              kind="Redirect")  # fmt: skip
        return target

    def close(self) -> None:
        """The host's client stays, for the next file."""


def _client(url: RemoteURL) -> httpx.Client:
    """The host's client: its connections bounded by the reads allowed at once, each socket
    operation by the reading thread's deadline; redirects are ours to follow."""
    key = (url.scheme, url.host, url.port)
    with _clients_lock:
        if key not in _http_clients:
            slots = fastmon_settings.REMOTE_MAX_CONCURRENT_PER_HOST
            _http_clients[key] = httpx.Client(
                transport=http_transport(slots), follow_redirects=False,
                timeout=fastmon_settings.REMOTE_READ_TIMEOUT_S,
            )  # fmt: skip
        return _http_clients[key]


def _raise_for(answer: httpx.Response) -> None:
    if answer.status_code >= 400:
        raise RemoteError(f"HTTP {answer.status_code}", kind="HTTPError",
                          transient=answer.status_code not in HTTP_PERMANENT)  # fmt: skip
