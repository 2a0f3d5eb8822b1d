"""Remote data roots: STF files read where they live, over XRootD (``root://``) and HTTP
(``http(s)://``, ``davs://`` read as ``https://``), reading only the sampled byte ranges.

A ``DATA_ROOTS`` entry may be a URL prefix; a ``file_url`` is read remotely only under one of
them, by the same containment rule as local roots, on normalised URLs: the same scheme, host and
port, a path inside the prefix, no credentials in the URL. A path is normalised once, into its
segments, and requests are built from those segments alone: whatever percent-decoding (once or
again, as a server or a proxy may) yields a separator, a dot segment, ``?``, ``#`` or a control
character is refused, so no path reaches a server that means something else there. A redirect
must land under a root too (``clients``). XRootD reads go by vector reads (the ``xrootd``
bindings, an optional extra); HTTP by ``Range`` requests, several ranges per request where the
server answers them so, one per range otherwise (httpx). Each host has a bound on concurrent
reads; connections are reused; transient errors are retried by the caller
(``reading.read_stf``) with backoff, within the read's deadline (``deadline``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from fastmon.conf import fastmon_settings

SCHEMES = {"root": "root", "http": "http", "https": "https", "davs": "https"}
DEFAULT_PORTS = {"root": 1094, "http": 80, "https": 443}
# Largest piece of one vector read element (XRootD's limit is just under 2 MiB).
XROOTD_ELEMENT = 1024 * 1024
XROOTD_MAX_ELEMENTS = 1024
# XRootD errors that waiting will not change: no such file, permission denied, not a file.
XROOTD_PERMANENT = {3010, 3011, 3016}
HTTP_PERMANENT = {400, 401, 403, 404, 405, 410, 416}
# Never in a remote URL, nor in a path's names however often they are decoded.
_CONTROL = frozenset(map(chr, [*range(0x20), 0x7F]))
_STRUCTURE = _CONTROL | set("/\\?#")


class RemoteError(Exception):
    """A remote read failed; ``transient``: worth trying again."""

    def __init__(self, message: str, *, transient: bool, kind: str) -> None:
        super().__init__(message)
        self.transient = transient
        self.kind = kind  # the error class named in a sample's public reason


@dataclass(frozen=True)
class RemoteURL:
    scheme: str  # root, http or https
    host: str  # lower case; an IPv6 address without its brackets
    port: int
    segments: tuple[str, ...]  # the path's names, each percent-decoded once
    directory: bool = False  # the path ends with "/"
    query: str = ""  # a redirect's, as its server gave it (a dCache pool's one-time key)

    @property
    def protocol(self) -> str:
        return "root" if self.scheme == "root" else "http"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def path(self) -> str:
        """The path as the server is asked for it: for HTTP each name percent-encoded (all but
        the unreserved characters), for XRootD as it is (XRootD decodes nothing)."""
        names = [quote(name, safe="") for name in self.segments] if self.protocol == "http" \
            else self.segments  # fmt: skip
        tail = "/" if self.directory and self.segments else ""
        return "/" + "/".join(names) + tail

    def __str__(self) -> str:
        separator = "/" if self.scheme == "root" else ""  # root://host:port//abs/path
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.netloc}{separator}{self.path}{query}"

    def contains(self, other: RemoteURL) -> bool:
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port) \
            and other.segments[: len(self.segments)] == self.segments  # fmt: skip


def parse_remote(url: str, keep_query: bool = False) -> RemoteURL | None:
    """A remote URL, normalised; None for anything else (a path, ``file://``). Raises
    ``ValueError`` for a remote URL that can never be read (credentials in it, no host, a path
    that is not plainly a path: ``_names``). An announced URL's query is dropped; a redirect's
    is kept (``keep_query``)."""
    if not _CONTROL.isdisjoint(url):
        raise ValueError("control characters are not allowed in a remote URL")
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        return None
    if parts.username or parts.password:
        raise ValueError("URLs with credentials are not read (tokens come from BEARER_TOKEN)")
    if not parts.hostname:
        raise ValueError("a remote URL needs a host")
    segments = _names(parts.path)
    return RemoteURL(scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[scheme],
                     segments, parts.path.endswith("/") and bool(segments),
                     parts.query if keep_query else "")  # fmt: skip


def _names(raw_path: str) -> tuple[str, ...]:
    """The path's names, each percent-decoded once; empty and ``.`` segments dropped. Refused:
    ``..``, and a name that, decoded once or again, holds or is what a server could take for
    structure (a separator, a dot segment, also before a ``;`` parameter, ``?``, ``#``) or a
    control character: ``%2e%2e``, ``%252e%252e``, ``%2F``, ``..%252f``, ``%3F``, ``%0d%0a``."""
    names = []
    for raw in raw_path.split("/"):
        if raw in ("", "."):
            continue
        if raw == "..":
            raise ValueError("'..' is not allowed in a remote path")
        name = level = unquote(raw)
        while True:
            if level.split(";")[0] in (".", "..") or not _STRUCTURE.isdisjoint(level):
                raise ValueError(f"{raw!r} is or decodes to a separator, a dot segment, '?', "
                                 "'#' or a control character")  # fmt: skip
            decoded = unquote(level)
            if decoded == level:
                break
            level = decoded
        names.append(name)
    return tuple(names)


def remote_roots(data_roots: Sequence[str]) -> list[RemoteURL]:
    return [root for entry in data_roots if (root := parse_remote(entry)) is not None]


def under_roots(url: RemoteURL, roots: Sequence[RemoteURL]) -> bool:
    """Whether ``url`` lies under one of the remote ``roots``."""
    return any(root.contains(url) for root in roots)


_host_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def host_slot(url: RemoteURL) -> threading.BoundedSemaphore:
    """The bound on concurrent reads from one host (REMOTE_MAX_CONCURRENT_PER_HOST)."""
    with _slots_lock:
        key = (url.host, url.port)
        if key not in _host_slots:
            _host_slots[key] = threading.BoundedSemaphore(
                fastmon_settings.REMOTE_MAX_CONCURRENT_PER_HOST
            )
        return _host_slots[key]


def bearer_token() -> str | None:
    """The WLCG bearer token discovery: ``BEARER_TOKEN``, else the file ``BEARER_TOKEN_FILE``,
    else ``$XDG_RUNTIME_DIR/bt_u<uid>``, else ``/tmp/bt_u<uid>``."""
    if token := os.environ.get("BEARER_TOKEN", "").strip():
        return token
    uid = os.getuid()
    candidates = [os.environ.get("BEARER_TOKEN_FILE", "")]
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(f"{runtime}/bt_u{uid}")
    candidates.append(f"/tmp/bt_u{uid}")
    for candidate in filter(None, candidates):
        try:
            return Path(candidate).read_text().strip() or None
        except OSError:
            continue
    return None


def pieces(spans: Sequence[tuple[int, int]], size: int) -> Iterator[tuple[int, int]]:
    """The byte spans cut into (offset, length) pieces of at most ``size`` bytes, in order."""
    for start, end in spans:
        for offset in range(start, end, size):
            yield offset, min(size, end - offset)
