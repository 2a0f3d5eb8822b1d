"""When checks run, and what becomes of their verdicts: once per ingest batch (its STF
announcements, then the runs it ended), on stored TF samples, on a tick (``CHECK_INTERVAL_S``,
run_fastmon's quality thread), and after each content merge for the runs it merged; inside the
transaction that stores what they judge (a merge's checks right after its own), so a
rolled-back batch rolls its checks back too.

Checks fire only while a run is running (CHECK_RUNNING_STATES and not a CHECK_QUIET_SUBSTATES,
or no state known, as in watch mode) and past CHECK_GRACE_S after fastmon saw its state change.
Their memory is kept up all the same, and a verdict held back is given at the next evaluation,
since checks judge what they keep. End-of-run verdicts are never held back.

Locks: a transaction takes the check states it needs once, in (run, check) order, so two
evaluations never deadlock; the tick skips states an ingest or sampling transaction holds."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.content.detectors import DetectorMap, detector_map
from fastmon.content.histograms import Content
from fastmon.content.references import references
from fastmon.database.bulk import update_each
from fastmon.live.events import record_live_events
from fastmon.live.frames import quality_event
from fastmon.models import CheckState, ContentCycle, DeadLetter, Run, RunContent, Slice
from fastmon.quality import alarms, flags
from fastmon.quality.framework import (
    Check,
    ContentSeen,
    RunFacts,
    SampleSeen,
    StfSeen,
    Window,
    configured_checks,
)
from fastmon.quality.verdicts import Quality, Verdict

logger = logging.getLogger("fastmon.quality")

# A hook's call: (check, its memory of the run, the run's facts, the run's id) -> verdict.
Hook = Callable[[Check, dict, RunFacts, int], Verdict | None]


def on_batch(seen: Mapping[int, Sequence[StfSeen]], ended: Iterable[int]) -> None:
    """An ingest batch: its STF announcements by run id (a run hearing nothing new of its
    STFs, as from a redelivery, is left alone), then the runs (by number) it ended."""
    news = [
        rid
        for rid, stfs in seen.items()
        if any(stf.new or stf.repeated or stf.size_bytes is not None for stf in stfs)
    ]
    ended_ids = list(Run.objects.filter(run_number__in=list(ended)).values_list("pk", flat=True))
    states = _states([*news, *ended_ids], _implementing("on_stfs", "on_end"))

    def stfs(check: Check, memory: dict, facts: RunFacts, rid: int) -> Verdict | None:
        return check.on_stfs(memory, facts, seen[rid])

    _evaluate(states, news, "on_stfs", stfs)
    if ended_ids:
        _end(states, ended_ids)


def on_samples(seen: Mapping[int, Sequence[SampleSeen]]) -> None:
    """TF samples just stored, by run id."""
    states = _states(list(seen), _implementing("on_samples"))

    def samples(check: Check, memory: dict, facts: RunFacts, rid: int) -> Verdict | None:
        return check.on_samples(memory, facts, seen[rid])

    _evaluate(states, list(seen), "on_samples", samples)


def on_tick(now: datetime | None = None) -> int:
    """The time-window checks of every running run (in a running state: a run fastmon knows
    no state of never ends, and is judged on ingest only); returns how many were evaluated."""
    now = now or timezone.now()
    runs = list(
        Run.objects.filter(state__in=fastmon_settings.CHECK_RUNNING_STATES)
        .exclude(substate__in=fastmon_settings.CHECK_QUIET_SUBSTATES)
        .values_list("pk", flat=True)
    )
    counted: dict[datetime, int] = {}  # one query per window, whatever the number of runs

    def dead_letters_since(since: datetime) -> int:
        if since not in counted:
            counted[since] = DeadLetter.objects.filter(last_received_at__gte=since).count()
        return counted[since]

    def slice_results_since(run_number: int, since: datetime) -> dict[str, int]:
        done = Slice.objects.filter(run__run_number=run_number, completed_at__gte=since)
        return dict(done.values_list("status").annotate(n=Count("pk")).order_by())

    window = Window(dead_letters_since, slice_results_since)
    with transaction.atomic():
        states = _states(runs, _implementing("on_tick"), skip_locked=True)
        evaluated = {rid for rid, _ in states}
        _evaluate(states, evaluated, "on_tick",
                  lambda check, memory, facts, _: check.on_tick(memory, facts, now, window),
                  now)  # fmt: skip
    return len(evaluated)


def on_content(run_ids: Iterable[int]) -> None:
    """The content checks of runs whose histograms a merge just moved (by run id): each run's
    content is read once, for every check, the references once for every run."""
    run_ids = sorted(set(run_ids))
    with transaction.atomic():
        states = _states(run_ids, _implementing("on_content"))
        if not states:
            return
        found: dict[int, ContentSeen] = {}
        common = (references(), detector_map())

        def content(check: Check, memory: dict, facts: RunFacts, rid: int) -> Verdict | None:
            if rid not in found:
                found[rid] = _content_seen(rid, *common)
            return check.on_content(memory, facts, found[rid])

        _evaluate(states, run_ids, "on_content", content)


def _content_seen(run_id: int, refs: Mapping[str, Content], detectors: DetectorMap) -> ContentSeen:
    row = RunContent.objects.filter(run_id=run_id).first()
    if row is None:
        return ContentSeen(Content(), Content(), Content(), refs, detectors)
    delta = ContentCycle.objects.filter(run_id=run_id, cycle=row.cycle).values_list("data")
    loaded = [bytes(data) for data in (row.data, row.window, *(d for (d,) in delta[:1]))]
    whole, window, *last = [Content.loads(data) if data else Content() for data in loaded]
    return ContentSeen(whole, window, last[0] if last else Content(), refs, detectors)


def _end(states: Mapping[tuple[int, str], CheckState], run_ids: list[int]) -> None:
    """These runs ended: end-of-run verdicts (over the whole run: from when fastmon first
    heard of it), then every flag closes and every open alarm clears; the runs' faults stay
    in their flags. Again for a redelivered end_run: nothing moves twice."""
    at = timezone.now()
    for run in Run.objects.filter(pk__in=run_ids):
        _evaluate(states, [run.pk], "on_end",
                  lambda check, memory, facts, _: check.on_end(memory, facts), at,
                  gated=False, start=flags.run_start(run))  # fmt: skip
        flags.close_all(run, at)
        alarms.clear_alarms(run, f"run {run.run_number} ended", at)


def _evaluate(
    states: Mapping[tuple[int, str], CheckState], run_ids: Iterable[int], hook_name: str,
    hook: Hook, at: datetime | None = None, gated: bool = True, start: datetime | None = None,
) -> None:  # fmt: skip
    """Call one hook of the checks that implement it, for these runs (their states locked),
    and apply the verdicts. The runs are read after the lock: a state another transaction
    changed meanwhile (an end_run) is the one judged."""
    checks = [check for check in configured_checks() if _implements(check, hook_name)]
    run_ids = list(run_ids)
    if not checks or not run_ids:
        return
    at = at or timezone.now()
    events = []
    touched = []
    for run in Run.objects.filter(pk__in=run_ids).order_by("pk"):
        if any((run.pk, check.name) not in states for check in checks):
            continue  # held by another transaction (a tick skips it)
        facts = RunFacts(run.run_number, run.state, run.substate, run.state_seen_at,
                         run.total_stf_files)  # fmt: skip
        firing = not gated or _running(run, at)
        moved: dict[str, dict[str, str]] = {}
        for check in checks:
            state = states[run.pk, check.name]
            touched.append(state)
            verdict = _judged(check, state, hook, facts)
            if verdict is None or not firing:
                continue
            before = Quality(state.quality)
            first_flag = start if state.since is None else None
            if flags.move(state, verdict, at, first_flag):
                alarms.follow(run, check.name, before, verdict.quality, verdict.reason, at)
                moved[check.name] = {"quality": verdict.quality, "reason": verdict.reason}
        if moved:  # one event per run and evaluation, however many checks moved
            overall, current = flags.overall_quality(run), flags.current_quality(run)
            events.append(quality_event(run.run_number, overall, current, moved))
    kept = {s.pk: [s.memory, s.quality, s.reason, s.since] for s in touched}
    update_each(CheckState, {}, ["memory", "quality", "reason", "since"], kept)
    record_live_events(events)


def _judged(check: Check, state: CheckState, hook: Hook, facts: RunFacts) -> Verdict | None:
    """A check's verdict, on a copy of its memory kept only if it returns: a check that fails
    (a site's own, say) is logged and leaves its memory as it was; ingest and sampling go on."""
    memory = copy.deepcopy(state.memory)
    try:
        verdict = hook(check, memory, facts, state.run_id)
    except Exception:
        logger.exception("quality check %s failed on run %s", check.name, facts.number)
        return None
    state.memory = memory
    return verdict


def _running(run: Run, at: datetime) -> bool:
    """Checks may fire: running (or in no state fastmon knows of: STFs without a run's
    lifecycle, as in watch mode), and past the grace period of the last state change."""
    if run.state and run.state not in fastmon_settings.CHECK_RUNNING_STATES:
        return False
    if run.substate in fastmon_settings.CHECK_QUIET_SUBSTATES:
        return False
    grace = timedelta(seconds=fastmon_settings.CHECK_GRACE_S)
    return run.state_seen_at is None or at - run.state_seen_at >= grace


def _implements(check: Check, hook_name: str) -> bool:
    return getattr(type(check), hook_name) is not getattr(Check, hook_name)


def _implementing(*hook_names: str) -> list[str]:
    return [c.name for c in configured_checks() if any(_implements(c, h) for h in hook_names)]


def _states(
    run_ids: list[int], names: list[str], skip_locked: bool = False
) -> dict[tuple[int, str], CheckState]:
    """These checks' states of these runs, locked in one order (made where missing); with
    ``skip_locked``, only the runs none of whose states another transaction holds."""
    run_ids = sorted(set(run_ids))
    if not run_ids or not names:
        return {}
    found = CheckState.objects.filter(run_id__in=run_ids, check_name__in=names)
    locked = found.select_for_update(skip_locked=skip_locked).order_by("run_id", "check_name")
    states = {(s.run_id, s.check_name): s for s in locked}
    wanted = [(rid, name) for rid in run_ids for name in names]
    if len(states) < len(wanted):
        missing = [CheckState(run_id=r, check_name=n) for r, n in wanted if (r, n) not in states]
        CheckState.objects.bulk_create(missing, ignore_conflicts=True)
        states = {(s.run_id, s.check_name): s for s in locked.all()}
    whole = {rid for rid in run_ids if all((rid, name) in states for name in names)}
    return {key: state for key, state in states.items() if key[0] in whole}
