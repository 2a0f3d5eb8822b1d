"""Verdicts kept as quality flags over time ranges, with ALICE's Run Condition Table semantics:
a check's flag holds from the verdict that set its quality until the next that changes it (so
adjacent flags of a check never share a quality: equal ones are one), null is shown as Unknown,
and time no flag covers is Unknown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import F, Min

from fastmon.models import CheckState, QualityFlag, Run
from fastmon.quality.verdicts import Quality, Verdict, worst


def move(state: CheckState, verdict: Verdict, at: datetime, start: datetime | None = None) -> bool:
    """Apply a verdict to a check's state; a new quality closes the open flag at ``at`` (with
    the last reason it had) and opens one (from ``start``, else ``at``). Returns whether the
    quality changed. An open flag's reason is its state's: kept there, not rewritten in the
    flag at every batch."""
    if verdict.quality == state.quality and state.since is not None:
        state.reason = verdict.reason
        return False
    _open(state).update(end=at, reason=state.reason)
    QualityFlag.objects.create(
        run_id=state.run_id, check_name=state.check_name, quality=verdict.quality,
        start=start or at, reason=verdict.reason,
    )  # fmt: skip
    state.quality, state.reason, state.since = verdict.quality, verdict.reason, at
    return True


def run_starts(runs: Sequence[Run]) -> dict[int, datetime]:
    """Where each run's whole-run flags start (by id): its first flag, else when fastmon heard
    of it."""
    flags = QualityFlag.objects.filter(run__in=runs).values("run").order_by()
    first = dict(flags.annotate(first=Min("start")).values_list("run", "first"))
    return {run.pk: first.get(run.pk) or run.created_at for run in runs}


def close_all(run_ids: Sequence[int], at: datetime) -> None:
    """These runs ended: every open flag ends with them, with its check's last reason."""
    states = CheckState.objects.filter(run_id__in=run_ids)
    now = {
        (r, name): reason for r, name, reason in states.values_list("run", "check_name", "reason")
    }
    closed = list(QualityFlag.objects.filter(run_id__in=run_ids, end=None))
    for flag in closed:
        flag.end, flag.reason = at, now.get((flag.run_id, flag.check_name), flag.reason)
    QualityFlag.objects.bulk_update(closed, ["end", "reason"])


def _open(state: CheckState) -> Any:
    return QualityFlag.objects.filter(run_id=state.run_id, check_name=state.check_name, end=None)


def overall_quality(run: Run) -> Quality:
    """The worst quality any check gave any part of the run (null: none gave one)."""
    return worst(QualityFlag.objects.filter(run=run).values_list("quality", flat=True).distinct())


def current_quality(run: Run) -> Quality:
    """The worst of the checks' qualities now (null: no check has an opinion)."""
    return worst(quality for quality, _ in _checks_now(run).values())


def _checks_now(run: Run) -> dict[str, tuple[str, str]]:
    """Each check's quality and reason of the run now, from its state (an open flag's reason
    is kept there)."""
    rows = CheckState.objects.filter(run=run).values_list("check_name", "quality", "reason")
    return {name: (quality, reason) for name, quality, reason in rows}


def run_quality(run: Run) -> dict[str, Any]:
    """``api/runs/<n>/quality/``: the run's overall quality (the worst any check gave it for
    any part of the run), its quality now, and its flags in time order. Adjacent flags of a
    check never have the same quality (``move`` opens one only on a change), so none merge."""
    now = _checks_now(run)
    flags = list(
        QualityFlag.objects.filter(run=run)
        .order_by("start", "check_name", "id")
        .values("quality", "start", "end", "reason", check=F("check_name"))
    )
    for flag in flags:
        if flag["end"] is None:  # open: its check's reason now
            flag["reason"] = now.get(flag["check"], ("", flag["reason"]))[1]
    return {
        "run_number": run.run_number,
        "overall": worst(flag["quality"] for flag in flags),
        "current": worst(quality for quality, _ in now.values()),
        "flags": flags,
    }
