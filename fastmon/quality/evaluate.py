"""When checks run, and what becomes of their verdicts: once per ingest batch (its STF
announcements, then the runs it ended), on stored TF samples, on a tick (``CHECK_INTERVAL_S``,
run_fastmon's quality thread), and after each content merge for the runs it merged; inside the
transaction that stores what they judge (a merge's checks right after its own), so a
rolled-back batch rolls its checks back too.

Checks fire only while a run is running (CHECK_RUNNING_STATES and not a CHECK_QUIET_SUBSTATES,
or no state known, as in watch mode) and past CHECK_GRACE_S after fastmon saw its state change.
Their memory is kept up all the same, and a verdict held back is given at the next evaluation,
since checks judge what they keep. End-of-run verdicts are never held back.

A tick judges the running runs active in the last CHECK_IDLE_S (an STF or a state change),
at most CHECK_TICK_MAX_RUNS of them, the most recently active first: a flood of runs that send
nothing costs a bounded tick, and the others keep their verdicts until they are active again.

Locks: a transaction takes the check states it needs once, in (run, check) order, so two
evaluations never deadlock; the tick skips states an ingest or sampling transaction holds.
The live-events lock comes first, as in ingest (which records its STFs' events before judging
them): taken in the other order, a tick or a sampling transaction holding a run's states and
waiting for it would deadlock against an ingest batch holding it and waiting for the states."""

from __future__ import annotations

import copy
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.db import transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import Substr
from django.utils import timezone

from fastmon.conf import fastmon_settings
from fastmon.content.detectors import DetectorMap, detector_map
from fastmon.content.histograms import Content
from fastmon.content.references import references
from fastmon.database.bulk import update_each
from fastmon.live.events import hold_live_events, record_live_events
from fastmon.live.frames import quality_event
from fastmon.models import CheckState, ContentCycle, DeadLetter, Run, RunContent, Slice, StfFile
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
# The run a dead letter's body names: its run_id, else an STF file name's run.
RUN_NAMED = re.compile(r'"run_id"\s*:\s*"?(\d{1,18})|swf\.(\d{1,18})\.\d+\.stf')
LETTER_HEAD = 4096  # characters of a dead letter's body searched for the run it names
_named: dict[str, int | None] = {}  # the run each body names, by the body's SHA-256
NAMED_KEPT = 50_000


@dataclass(frozen=True)
class Ticked:
    """What a tick did: runs judged, of the running runs active (``left_out`` past
    CHECK_TICK_MAX_RUNS)."""

    evaluated: int
    active: int
    left_out: int


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

    sent = alarms.AlarmNews()
    _evaluate(states, news, "on_stfs", stfs, sent)
    if ended_ids:
        _end(states, ended_ids, sent)
    sent.send()


def on_samples(seen: Mapping[int, Sequence[SampleSeen]]) -> None:
    """TF samples just stored, by run id."""
    states = _states(list(seen), _implementing("on_samples"))

    def samples(check: Check, memory: dict, facts: RunFacts, rid: int) -> Verdict | None:
        return check.on_samples(memory, facts, seen[rid])

    sent = alarms.AlarmNews()
    _evaluate(states, list(seen), "on_samples", samples, sent)
    sent.send()


def on_tick(
    now: datetime | None = None, connected: bool = True, connected_since: datetime | None = None
) -> Ticked:
    """The time-window checks of the running runs active lately (in a running state: a run
    fastmon knows no state of never ends, and is judged on ingest only). ``connected``: whether
    run_fastmon hears the broker, and since when (absence is not judged while it does not)."""
    now = now or timezone.now()
    active = _active_runs(now)
    runs = active[: fastmon_settings.CHECK_TICK_MAX_RUNS]
    # One query per window, whatever the number of runs.
    letters_by_run = cache(_letters_by_run)

    @cache
    def dead_letters_since(since: datetime) -> int:
        return DeadLetter.objects.filter(last_received_at__gte=since).count()

    @cache
    def results_by_run(since: datetime) -> dict[int, dict[str, int]]:
        done = Slice.objects.filter(run_id__in=runs, completed_at__gte=since).order_by()
        counts = done.values_list("run__run_number", "status").annotate(n=Count("pk"))
        results: dict[int, dict[str, int]] = {}
        for number, status, n in counts:
            results.setdefault(number, {})[status] = n
        return results

    def run_dead_letters_since(run_number: int, since: datetime) -> int:
        named = letters_by_run(since)
        return named[run_number] + named[None]

    window = Window(dead_letters_since,
                    lambda run_number, since: results_by_run(since).get(run_number, {}),
                    run_dead_letters_since, connected, connected_since)  # fmt: skip
    with transaction.atomic():
        states = _states(runs, _implementing("on_tick"), skip_locked=True)
        evaluated = {rid for rid, _ in states}
        sent = alarms.AlarmNews()
        _evaluate(states, evaluated, "on_tick",
                  lambda check, memory, facts, _: check.on_tick(memory, facts, now, window),
                  sent, now)  # fmt: skip
        sent.send()
    return Ticked(len(evaluated), len(active), len(active) - len(runs))


def _active_runs(now: datetime) -> list[int]:
    """The running runs with an STF or a state change in the last CHECK_IDLE_S, by id, the
    most recently active first."""
    since = now - timedelta(seconds=fastmon_settings.CHECK_IDLE_S)
    running = Run.objects.filter(state__in=fastmon_settings.CHECK_RUNNING_STATES).exclude(
        substate__in=fastmon_settings.CHECK_QUIET_SUBSTATES
    )
    recent = StfFile.objects.filter(received_at__gte=since, run__in=running).order_by()
    last_stf = dict(recent.values_list("run").annotate(last=Max("received_at")))
    rows = running.filter(Q(state_seen_at__gte=since) | Q(pk__in=list(last_stf)))
    activity = {
        pk: max(filter(None, (changed, last_stf.get(pk))))
        for pk, changed in rows.values_list("pk", "state_seen_at")
    }
    return sorted(activity, key=activity.__getitem__, reverse=True)


def _letters_by_run(since: datetime) -> Counter[int | None]:
    """Dead letters since then by the run their body names (None: none). A body is read
    once per process (its first LETTER_HEAD characters), and a flood of one body is one row."""
    letters = DeadLetter.objects.filter(last_received_at__gte=since).order_by()
    by_body = dict(letters.values_list("body_sha256").annotate(n=Count("pk")))
    if len(_named) > NAMED_KEPT:
        _named.clear()
    unknown = [sha for sha in by_body if sha not in _named]
    for start in range(0, len(unknown), 500):
        heads = letters.filter(body_sha256__in=unknown[start : start + 500]).values_list(
            "body_sha256", Substr("body", 1, LETTER_HEAD)
        )
        for sha, head in heads:
            found = RUN_NAMED.search(head)
            _named[sha] = int(found[1] or found[2]) if found else None
    runs: Counter[int | None] = Counter()
    for sha, count in by_body.items():
        runs[_named[sha]] += count
    return runs


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

        sent = alarms.AlarmNews()
        _evaluate(states, run_ids, "on_content", content, sent)
        sent.send()


def _content_seen(run_id: int, refs: Mapping[str, Content], detectors: DetectorMap) -> ContentSeen:
    row = RunContent.objects.filter(run_id=run_id).first()
    if row is None:
        return ContentSeen(Content(), Content(), Content(), refs, detectors)
    delta = ContentCycle.objects.filter(run_id=run_id, cycle=row.cycle).values_list("data")
    loaded = [bytes(data) for data in (row.data, row.window, *(d for (d,) in delta[:1]))]
    whole, window, *last = [Content.loads(data) if data else Content() for data in loaded]
    return ContentSeen(whole, window, last[0] if last else Content(), refs, detectors)


def _end(
    states: Mapping[tuple[int, str], CheckState], run_ids: list[int], sent: alarms.AlarmNews
) -> None:
    """These runs ended: end-of-run verdicts (over the whole run: from when fastmon first
    heard of it), then every flag closes and every open alarm clears; the runs' faults stay
    in their flags. Again for a redelivered end_run: nothing moves twice."""
    at = timezone.now()
    runs = list(Run.objects.filter(pk__in=run_ids))
    _evaluate(states, run_ids, "on_end",
              lambda check, memory, facts, _: check.on_end(memory, facts), sent, at,
              gated=False, starts=flags.run_starts(runs))  # fmt: skip
    flags.close_all(run_ids, at)
    alarms.clear_alarms(sent, {run: f"run {run.run_number} ended" for run in runs}, at)


def _evaluate(
    states: Mapping[tuple[int, str], CheckState], run_ids: Iterable[int], hook_name: str,
    hook: Hook, sent: alarms.AlarmNews, at: datetime | None = None, gated: bool = True,
    starts: Mapping[int, datetime] | None = None,
) -> None:  # fmt: skip
    """Call one hook of the checks that implement it, for these runs (their states locked),
    and apply the verdicts (the alarms they raise or clear into ``sent``; a check's first flag
    from the run's ``starts``, else now). The runs are read after the lock: a state another
    transaction changed meanwhile (an end_run) is the one judged."""
    checks = [check for check in configured_checks() if _implements(check, hook_name)]
    run_ids = list(run_ids)
    if not checks or not run_ids:
        return
    at = at or timezone.now()
    moves: list[tuple[Run, dict[str, dict[str, str]]]] = []
    touched = []
    for run in Run.objects.filter(pk__in=run_ids).order_by("pk"):
        if any((run.pk, check.name) not in states for check in checks):
            continue  # held by another transaction (a tick skips it)
        facts = RunFacts(run.run_number, run.state, run.substate, run.state_seen_at,
                         run.total_stf_files, run.state_changed_at)  # fmt: skip
        firing = not gated or _running(run, at)
        moved: dict[str, dict[str, str]] = {}
        for check in checks:
            state = states[run.pk, check.name]
            touched.append(state)
            verdict = _judged(check, state, hook, facts)
            if verdict is None or not firing:
                continue
            before = Quality(state.quality)
            first_flag = (starts or {}).get(run.pk) if state.since is None else None
            if flags.move(state, verdict, at, first_flag):
                alarms.follow(sent, run, check.name, before, verdict.quality, verdict.reason, at)
                moved[check.name] = {"quality": verdict.quality, "reason": verdict.reason}
        if moved:
            moves.append((run, moved))
    kept = {s.pk: [s.memory, s.quality, s.reason, s.since] for s in touched}
    update_each(CheckState, {}, ["memory", "quality", "reason", "since"], kept)
    # One event per run and evaluation, however many checks moved; its quality now read once
    # the states above are stored.
    record_live_events([
        quality_event(run.run_number, flags.overall_quality(run), flags.current_quality(run), moved)
        for run, moved in moves
    ])  # fmt: skip


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
    hold_live_events()  # before any check state, as ingest takes them: see Locks
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
