"""run_fastmon's background loops besides its reports on itself (``heartbeat``): the quality
tick, its own sampler for a site without Celery, the swf-monitor feed and the content merger.
Each is a ``Loop``: one thread, started after the consumer subscribes, stopped by its
deadline."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.content.merging import MERGE_BATCH, merge_cycle
from fastmon.quality.alarms import OwnAlarm
from fastmon.quality.evaluate import on_content, on_tick
from fastmon.retry import backoff_delay
from fastmon.runtime.loop import Loop
from fastmon.sampling.dispatch import due_for_sampling
from fastmon.sampling.lanes import hand_over
from fastmon.sampling.service import sample_stfs
from fastmon.swf_monitor.client import MonitorUnavailable
from fastmon.swf_monitor.feed import FEED_BATCH, relay_to_monitor, sync_from_monitor
from fastmon.swf_monitor.parameters import fetch_missing_parameters


class QualityTicker(Loop):
    """Every CHECK_INTERVAL_S, the time-window checks of the running runs active lately (what
    only the passing of time reveals: a stall, a rate drop, dead letters piling up). While the
    consumer is cut off from the broker (``connected_since`` gives None), silence is not the
    DAQ's: absence is not judged, and one alarm of fastmon's own says so until it is back."""

    name = "quality"
    what = "quality checks"
    logger = logging.getLogger("fastmon.quality")
    capped_every_s = 60.0  # the cap's log line, at most this often while it holds

    def __init__(self, connected_since: Callable[[], datetime | None]) -> None:
        super().__init__()
        self.connected_since = connected_since
        self.cut_off = OwnAlarm("BrokerConnection")
        self.capped_said = -math.inf  # time.monotonic() of the cap's last log line

    def enabled(self) -> bool:
        return bool(fastmon_settings.CHECKS)

    def first_wait(self) -> float:
        return fastmon_settings.CHECK_INTERVAL_S

    def iterate(self) -> float:
        since = self.connected_since()
        ticked = on_tick(connected=since is not None, connected_since=since)
        now = timezone.now()
        if since is None:
            held = f"absence not judged ({ticked.evaluated} running runs)"
            self.cut_off.open(f"run_fastmon is not connected to the broker: {held}", now)
        elif (raised := self.cut_off.raised) is not None:
            away = (since - raised.raised_at).total_seconds()
            self.cut_off.close(f"connected again, {away:.0f} s after the alarm", now)
        if not ticked.left_out:
            self.capped_said = -math.inf
        elif time.monotonic() - self.capped_said >= self.capped_every_s:
            self.capped_said = time.monotonic()
            self.logger.warning(
                "quality tick: %d running runs active in the last %.0f s (CHECK_IDLE_S); "
                "judging the %d most recently active (CHECK_TICK_MAX_RUNS), %d left out",
                ticked.active, fastmon_settings.CHECK_IDLE_S,
                ticked.active - ticked.left_out, ticked.left_out,
            )  # fmt: skip
        return fastmon_settings.CHECK_INTERVAL_S

    def retry_delay(self, attempt: int) -> float:
        return fastmon_settings.CHECK_INTERVAL_S  # a tick skipped, the next on time


class Sampler(Loop):
    """run_fastmon's own sampler, for a site without Celery (``SAMPLING_WORKERS``): samples the
    oldest unsampled STFs a chunk at a time with the same service and ledger as the Celery task.
    It reads the database, not a hand-off, so nothing is lost across restarts. Only the local
    STFs are sampled on its thread: each remote host's are handed to its lane (``lanes``),
    which samples them with the same service on a thread of its own, so a slow or hostile
    server holds up only its own STFs. A local chunk in hand is finished before it stops; a
    lane's read in flight is dropped and done again after a restart."""

    name = "sampler"
    what = "sampler"
    logger = logging.getLogger("fastmon.sampling")

    def iterate(self) -> float:
        names = due_for_sampling(fastmon_settings.SAMPLING_TASK_CHUNK)
        if not names:
            return fastmon_settings.SAMPLING_POLL_S
        if local := hand_over(names, sample_stfs):
            with metrics.SAMPLING_SECONDS.time():
                sample_stfs(local)
        return 0.0


class MonitorFeed(Loop):
    """The thread that talks to swf-monitor (besides heartbeats): it keeps its fastmon-files fed
    while SWF_MONITOR_FEED is on, and asks it for the runs' workflow parameters. Stopped
    briefly: a POST in flight that is cut short is sent again by the next run."""

    name = "feed"
    what = "swf-monitor feed"
    logger = logging.getLogger("fastmon.outbox")
    expected = (MonitorUnavailable, DatabaseError)
    stop_within = 2.0

    def __init__(self) -> None:
        super().__init__()
        self.next_sync = time.monotonic()

    def enabled(self) -> bool:
        """Wherever swf-monitor is named: the feed when it is on, the runs' parameters always."""
        return bool(fastmon_settings.SWF_MONITOR_URL)

    def iterate(self) -> float:
        feeding = fastmon_settings.SWF_MONITOR_FEED
        tried = relay_to_monitor(FEED_BATCH) if feeding else 0
        if time.monotonic() >= self.next_sync:
            fetch_missing_parameters()
            if feeding:
                sync_from_monitor()
            self.next_sync = time.monotonic() + fastmon_settings.SWF_MONITOR_SYNC_S
        return 0.0 if tried == FEED_BATCH else fastmon_settings.OUTBOX_POLL_S

    def retry_delay(self, attempt: int) -> float:
        return backoff_delay(attempt, cap=fastmon_settings.OUTBOX_RETRY_MAX_S)


class ContentMerger(Loop):
    """Every CONTENT_CYCLE_S, the samples' partial histograms folded into their runs'
    (``fastmon.content.merging``), then the content checks of the runs merged; a backlog is
    worked off without waiting."""

    name = "content"
    what = "content merger"
    logger = logging.getLogger("fastmon.content")

    def enabled(self) -> bool:
        return bool(fastmon_settings.CONTENT_ENABLED)

    def first_wait(self) -> float:
        return fastmon_settings.CONTENT_CYCLE_S

    def iterate(self) -> float:
        merged = merge_cycle()
        if merged.run_ids and fastmon_settings.CHECKS:
            on_content(merged.run_ids)
        return 0.0 if merged.partials == MERGE_BATCH else fastmon_settings.CONTENT_CYCLE_S
