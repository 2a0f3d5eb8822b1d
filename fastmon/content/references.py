"""References: a detector's histograms as one run had them when a shifter chose it, which the
content checks compare runs with (as Belle II's and ALICE's reference comparators do). Copied,
not pointed at: the run's later cycles never move a reference."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from fastmon.content.detectors import detector_map
from fastmon.content.histograms import Content
from fastmon.content.served import run_content
from fastmon.models import ContentReference, Run


class Refused(ValueError):
    """A reference that cannot be made: the detector is not in the map, or the run has none
    of its histograms yet."""


def of_detector(content: Content, detector: str) -> Content:
    """The part of ``content`` that is one detector's: its histograms and counts."""
    prefix = f"{detector}/"
    return Content(
        histograms={n: h.copy() for n, h in content.histograms.items() if n.startswith(prefix)},
        corrupt={k: v for k, v in content.corrupt.items() if k == detector},
        hits={k: v for k, v in content.hits.items() if k == detector},
        tfs={k: v for k, v in content.tfs.items() if k == detector},
    )


def reference_content(detector: str, run: Run) -> Content:
    """What ``run`` would give ``detector`` as its reference now; Refused says why nothing."""
    names = [d.name for d in detector_map()]
    if detector not in names:
        raise Refused(f"unknown detector {detector!r}: the map has {', '.join(names)}")
    mine = of_detector(run_content(run), detector)
    if not mine.histograms:
        raise Refused(f"run {run.run_number} has no {detector} content yet (not merged)")
    return mine


def choose_reference(detector: str, run: Run, by: str = "") -> ContentReference:
    """Make ``run``'s histograms of ``detector``, as they are now, its reference, replacing
    the one it had."""
    mine = reference_content(detector, run)
    with transaction.atomic():
        reference, _ = ContentReference.objects.update_or_create(
            detector=detector,
            defaults={"run": run, "chosen_at": timezone.now(), "chosen_by": by,
                      "data": mine.dumps()},
        )  # fmt: skip
    return reference


def references() -> dict[str, Content]:
    """Every reference by detector, read once per content cycle (decoded again only when one
    was chosen anew)."""
    found = {}
    rows = list(ContentReference.objects.values_list("pk", "detector", "chosen_at"))
    for pk, detector, chosen_at in rows:
        key = (pk, chosen_at)
        if key not in _loaded:
            data = ContentReference.objects.values_list("data", flat=True).get(pk=pk)
            _loaded[key] = Content.loads(bytes(data))
        found[detector] = _loaded[key]
    for key in set(_loaded) - {(pk, at) for pk, _, at in rows}:
        del _loaded[key]
    return found


_loaded: dict[tuple[int, datetime], Content] = {}
