"""A run's histograms as the API answers for them, made once per cycle and kept in memory.

Every shifter page on a run asks for the same histograms right after each merge: decoding the
run's content and rendering the 15 histograms a page shows as JSON (about 35 ms) per request
cost the server seconds a cycle with 50 pages. Here each is made once per process and version
(a run's content by its cycle, a reference by when it was chosen) and served as bytes; the
pages' one request a cycle (``bundle``) is kept whole, plain and gzipped (9 ms more, once).
Bounded: old cycles fall out."""

from __future__ import annotations

import gzip
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from django.http import Http404

from fastmon.content import served
from fastmon.content.histograms import Content
from fastmon.content.references import references
from fastmon.models import ContentReference, Run, RunContent

V = TypeVar("V")
# Kept per process: runs x windows x cycles still asked for (a page a cycle behind), and the
# bundles of them (the pages of one run ask for one, a window).
CONTENTS, BUNDLES, REFERENCES = 8, 16, 32


class Missing(LookupError):
    """Histograms asked for that the run (or the reference) does not have."""


class Bounded(Generic[V]):
    """The ``size`` values last used, by key, each made once: a caller that finds its value
    being made waits for it (50 pages ask at once, right after a merge)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            value = self._values[key] = make()
            while len(self._values) > self.size:
                self._values.popitem(last=False)
            return value


@dataclass
class Rendered:
    """One version of some histograms and each one's UHI JSON once asked for."""

    content: Content
    json: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def render(self, names: Iterable[str]) -> dict[str, bytes]:
        """Each of ``names`` as UHI JSON (bytes); Missing names those it does not have."""
        names = list(dict.fromkeys(names))
        missing = [n for n in names if n not in self.content.histograms]
        if missing:
            raise Missing(", ".join(missing))
        with self.lock:
            for name in names:
                if name not in self.json:
                    self.json[name] = served.uhi(self.content.histograms[name])
            return {name: self.json[name] for name in names}


@dataclass(frozen=True)
class Bundle:
    """One answer to the pages' request for what they show: JSON, and gzipped."""

    plain: bytes
    gzipped: bytes


_contents: Bounded[Rendered] = Bounded(CONTENTS)
_references: Bounded[Rendered] = Bounded(REFERENCES)
_bundles: Bounded[Bundle] = Bounded(BUNDLES)


def run_histograms(run_number: int, window: str) -> tuple[int, Rendered]:
    """The run's content in ``window`` ("run" or "last") as last merged, and its cycle; Http404
    for an unknown run. One query when it is kept: every page asks, every cycle."""
    version = ("content__pk", "content__cycle", "content__merged_at")
    row = Run.objects.filter(run_number=run_number).values_list(*version).first()
    if row is None:
        raise Http404(f"no run {run_number}")
    if row[0] is None:  # not merged yet
        return 0, Rendered(Content())
    key = (*row, window)

    def load() -> Rendered:
        column = "window" if window == "last" else "data"
        data = RunContent.objects.values_list(column, flat=True).get(pk=row[0])
        return Rendered(Content.loads(bytes(data)) if data else Content())

    # A merge committed between the two reads puts its bins under the older key: a page then
    # draws a cycle early, and the next request, under the newer key, reads them again.
    return row[1], _contents.get(key, load)


def references_of(detectors: Iterable[str]) -> dict[str, Rendered]:
    """The references these detectors have, by detector."""
    rows = ContentReference.objects.filter(detector__in=set(detectors))
    found = rows.values_list("detector", "pk", "chosen_at")
    return {d: _references.get((pk, at), partial(_reference, d)) for d, pk, at in found}


def _reference(detector: str) -> Rendered:
    return Rendered(references().get(detector) or Content())


def bundle(run_number: int, window: str, names: list[str], referenced: list[str]) -> Bundle:
    """``{"cycle", "histograms": {name: UHI}, "references": {name: UHI}}`` for these names: the
    run's in ``window`` (Missing if it lacks one) and the references' (those that exist)."""
    cycle, rendered = run_histograms(run_number, window)
    ours = rendered.render(names)
    theirs: dict[str, bytes] = {}
    found = references_of(name.split("/", 1)[0] for name in referenced)
    for name in referenced:
        reference = found.get(name.split("/", 1)[0])
        if reference is not None and name in reference.content.histograms:
            theirs.update(reference.render([name]))
    # Keyed by what it holds: the very bytes objects above (hashed once, compared by identity),
    # which are new whenever the run or a reference has a new version.
    key = (run_number, cycle, window, tuple(ours.items()), tuple(theirs.items()))

    def make() -> Bundle:
        plain = b'{"cycle":%d,"histograms":%s,"references":%s}' % (
            cycle, _object(ours), _object(theirs))  # fmt: skip
        return Bundle(plain, gzip.compress(plain, compresslevel=6, mtime=0))

    return _bundles.get(key, make)


def _object(members: dict[str, bytes]) -> bytes:
    """A JSON object of already rendered values."""
    joined = b",".join(json.dumps(name).encode() + b":" + value for name, value in members.items())
    return b"{" + joined + b"}"
