"""When checks run, and what becomes of their verdicts: on each ingest batch's STF
announcements, on stored TF samples, on a tick (``CHECK_INTERVAL_S``, run_fastmon's quality
thread) and at end of run; always inside the transaction that stores what they judge.

Checks fire only while a run is running (CHECK_RUNNING_STATES, not a CHECK_QUIET_SUBSTATES,
or no state known)
and past CHECK_GRACE_S after a state change: their memory is kept up all the same, and a
verdict held back is given again at the next evaluation, since checks judge what they keep.
The end-of-run verdicts are the exception: the run is over, its faults are final."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.db import update_each
from fastmon.live.events import record_live_events
from fastmon.live.frames import quality_event
from fastmon.models import CheckState, DeadLetter, Run
from fastmon.quality import alarms, flags
from fastmon.quality.framework import (
    Check,
    RunFacts,
    SampleSeen,
    StfSeen,
    Window,
    configured_checks,
)
from fastmon.quality.verdicts import Quality, Verdict, worst

# A hook's call: (check, its memory of the run, the run's facts, the run's id) -> verdict.
Hook = Callable[[Check, dict, RunFacts, int], Verdict | None]


def on_announcements(seen: Mapping[int, Sequence[StfSeen]]) -> None:
    """STF announcements just stored, by run id (a run hearing nothing new of its STFs, as
    from a redelivery, is left alone)."""
    news = [
        rid
        for rid, stfs in seen.items()
        if any(stf.new or stf.repeated or stf.size_bytes is not None for stf in stfs)
    ]
    _evaluate(news, lambda check, memory, run, rid: check.on_stfs(memory, run, seen[rid]))


def on_samples(seen: Mapping[int, Sequence[SampleSeen]]) -> None:
    """TF samples just stored, by run id."""
    _evaluate(seen.keys(), lambda check, memory, run, rid: check.on_samples(memory, run, seen[rid]))


def on_tick(now: datetime | None = None) -> int:
    """The time-window checks of every running run; returns how many runs were evaluated."""
    now = now or timezone.now()
    runs = list(
        Run.objects.filter(state__in=fastmon_settings.CHECK_RUNNING_STATES)
        .exclude(substate__in=fastmon_settings.CHECK_QUIET_SUBSTATES)
        .values_list("pk", flat=True)
    )
    window = Window(
        dead_letters_since=lambda since: DeadLetter.objects.filter(received_at__gte=since).count()
    )
    with transaction.atomic():
        _evaluate(
            runs, lambda check, memory, run, rid: check.on_tick(memory, run, now, window), now
        )
    return len(runs)


def on_runs_end(run_numbers: Iterable[int]) -> None:
    """These runs ended: end-of-run verdicts (over the whole run: from when fastmon first
    heard of it), then every flag closes and every open alarm clears; the runs' faults stay
    in their flags. Flags keep fastmon's clock throughout: the DAQ's may differ. Again for a
    redelivered end_run: nothing moves twice."""
    at = timezone.now()
    for run in Run.objects.filter(run_number__in=list(run_numbers)):
        _evaluate([run.pk], lambda check, memory, facts, _: check.on_end(memory, facts), at,
                  gated=False, start=flags.run_start(run))  # fmt: skip
        flags.close_all(run, at)
        alarms.clear_alarms(run, f"run {run.run_number} ended", at)


def _evaluate(
    run_ids: Iterable[int], hook: Hook, at: datetime | None = None,
    gated: bool = True, start: datetime | None = None,
) -> None:  # fmt: skip
    checks = configured_checks()
    run_ids = [rid for rid in run_ids if rid is not None]
    if not checks or not run_ids:
        return
    at = at or timezone.now()
    states = _states(run_ids, [check.name for check in checks])
    runs = {state.run_id: state.run for state in states.values()}
    events = []
    for rid, run in runs.items():
        moved: dict[str, dict[str, str]] = {}
        facts = RunFacts(run.run_number, run.state, run.substate, run.state_changed_at,
                         run.total_stf_files)  # fmt: skip
        firing = not gated or _running(run, at)
        for check in checks:
            state = states[rid, check.name]
            verdict = hook(check, state.memory, facts, rid)
            if verdict is None or not firing:
                continue
            before = Quality(state.quality)
            first_flag = start if state.since is None else None
            if flags.move(state, verdict, at, first_flag):
                alarms.follow(run, check.name, before, verdict.quality, verdict.reason, at)
                moved[check.name] = {"quality": verdict.quality, "reason": verdict.reason}
        if moved:  # one event per run and evaluation, however many checks moved
            current = worst(s.quality for (r, _), s in states.items() if r == rid)
            events.append(quality_event(run.run_number, current, moved))
    kept = {s.pk: [s.memory, s.quality, s.reason, s.since] for s in states.values()}
    update_each(CheckState, {}, ["memory", "quality", "reason", "since"], kept)
    record_live_events(events)


def _running(run: Run, at: datetime) -> bool:
    """Checks may fire: running (or in no state fastmon knows of: STFs without a run's
    lifecycle, as in watch mode), and past the grace period of the last state change."""
    if run.state and run.state not in fastmon_settings.CHECK_RUNNING_STATES:
        return False
    if run.substate in fastmon_settings.CHECK_QUIET_SUBSTATES:
        return False
    grace = timedelta(seconds=fastmon_settings.CHECK_GRACE_S)
    return run.state_changed_at is None or at - run.state_changed_at >= grace


def _states(run_ids: list[int], names: list[str]) -> dict[tuple[int, str], CheckState]:
    """Every check's state of these runs, with its run, locked (made where missing)."""
    found = CheckState.objects.filter(run_id__in=run_ids, check_name__in=names)
    # One order, no deadlock; the run comes along (one query for both).
    locked = (
        found.select_related("run").select_for_update(of=("self",)).order_by("run_id", "check_name")
    )
    states = {(s.run_id, s.check_name): s for s in locked}
    wanted = [(rid, name) for rid in dict.fromkeys(run_ids) for name in names]
    if len(states) < len(wanted):
        missing = [CheckState(run_id=r, check_name=n) for r, n in wanted if (r, n) not in states]
        CheckState.objects.bulk_create(missing, ignore_conflicts=True)
        states = {(s.run_id, s.check_name): s for s in locked.all()}
    return states
