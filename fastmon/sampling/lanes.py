"""Lanes: where STFs are read from, this machine or one remote host, each sampled apart from the
others, so a slow or hostile data server holds up only the STFs it serves.

run_fastmon's own sampler (``SAMPLING_WORKERS``) samples the local STFs of a round itself and
hands each remote host's to that host's lane: a thread of its own that samples them with the
same service, a chunk at a time. A lane still busy takes no more; its STFs wait in the database,
left out of the sampler's rounds (``busy_prefixes``) until it is free. With Celery, a task's
chunk holds the STFs of one lane only (``dispatch``). Only hosts under a remote data root have a
lane (so their number is the configuration's); any other STF is sampled (or refused) at once.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence

from django.db import DatabaseError, connection

from fastmon.conf import fastmon_settings
from fastmon.models import StfFile
from fastmon.sampling.roots import RemoteURL, parse_remote, remote_roots, under_roots

logger = logging.getLogger("fastmon.sampling")

LOCAL = "local"  # this machine's files, and every STF not read from a remote root
Work = Callable[[list[str]], object]


def lane_of(file_url: str, roots: Sequence[RemoteURL]) -> str:
    """The lane of an STF: ``scheme://host:port`` of the remote root's host it lies under, else
    LOCAL."""
    try:
        remote = parse_remote(file_url) if file_url else None
    except ValueError:
        return LOCAL
    if remote is None or not under_roots(remote, roots):
        return LOCAL
    return f"{remote.scheme}://{remote.netloc}"


def by_lane(names: Sequence[str]) -> list[list[str]]:
    """The STFs in chunks of one lane each, in their order."""
    return list(_grouped(names)[0].values())


def _grouped(names: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The STFs by lane, in their order (those not stored are LOCAL's), and their URLs; with no
    remote root, all LOCAL's, asking the database nothing."""
    try:
        roots = remote_roots(fastmon_settings.DATA_ROOTS)
    except ValueError:
        roots = []  # reading says why, STF by STF
    if not roots:
        return ({LOCAL: list(names)} if names else {}), {}
    urls = dict(StfFile.objects.filter(stf_filename__in=names)
                .values_list("stf_filename", "file_url"))  # fmt: skip
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(lane_of(urls.get(name, ""), roots), []).append(name)
    return groups, urls


def _prefix(file_url: str) -> str | None:
    """The URL up to its path, as announced (``http://Host:80/``): what the database can match."""
    scheme_end = file_url.find("://")
    path_at = file_url.find("/", scheme_end + 3) if scheme_end > 0 else -1
    return file_url[: path_at + 1] if path_at > 0 else None


class _Lane:
    """One thread sampling one lane's chunks, one at a time."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.prefixes: set[str] = set()  # its STFs' URLs as announced, up to the path
        self.idle = threading.Event()
        self.idle.set()
        self.jobs: queue.SimpleQueue[tuple[list[str], Work]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"fastmon-lane-{key}", daemon=True).start()

    def take(self, names: list[str], work: Work) -> None:
        """The chunk to sample, when the lane is idle; else it is left (it waits in the
        database for a later round)."""
        if self.idle.is_set():
            self.idle.clear()
            self.jobs.put((names, work))

    def _run(self) -> None:
        while True:
            names, work = self.jobs.get()
            try:
                work(names)
            except Exception as exc:  # the lane must outlive anything one chunk meets
                log = logger.warning if isinstance(exc, DatabaseError) else logger.exception
                log("sampling %d STFs of %s failed (%s); they wait for the next round",
                    len(names), self.key, exc)  # fmt: skip
                connection.close()  # a new one for the next chunk, should this one be broken
            finally:
                self.idle.set()


class Lanes:
    """The process's remote lanes, made as their hosts are first met."""

    def __init__(self) -> None:
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()

    def hand_over(self, names: Sequence[str], work: Work) -> list[str]:
        """Hand each remote lane its STFs of ``names`` to sample with ``work``, when it is free
        (else they wait for a later round); return the LOCAL ones, for the caller."""
        groups, urls = _grouped(names)
        with self._lock:
            for key, group in groups.items():
                if key != LOCAL:
                    if key not in self._lanes:
                        self._lanes[key] = _Lane(key)
                    lane = self._lanes[key]
                    lane.prefixes.update(filter(None, (_prefix(urls[name]) for name in group)))
                    lane.take(group, work)
        return groups.get(LOCAL, [])

    def busy_prefixes(self) -> list[str]:
        """The URL prefixes of the STFs of lanes at work: the sampler leaves them out."""
        with self._lock:
            return sorted({prefix for lane in self._lanes.values() if not lane.idle.is_set()
                           for prefix in lane.prefixes})  # fmt: skip


_lanes = Lanes()


def hand_over(names: Sequence[str], work: Work) -> list[str]:
    """``Lanes.hand_over`` of the process's lanes."""
    return _lanes.hand_over(names, work)


def busy_prefixes() -> list[str]:
    """``Lanes.busy_prefixes`` of the process's lanes."""
    return _lanes.busy_prefixes()


def _forget_parents_lanes() -> None:
    """A forked process has none of its parent's threads."""
    global _lanes
    _lanes = Lanes()


os.register_at_fork(after_in_child=_forget_parents_lanes)
