"""fastmon's Prometheus metrics, all defined here, and the view that serves them.

Each process (run_fastmon, Celery workers, web workers) counts in its own memory, which a
scrape of one web worker would not see. Set ``PROMETHEUS_MULTIPROC_DIR`` to a directory that
every fastmon process of the host shares (empty it when the whole site starts): each process
then writes its values there and ``metrics_view`` adds them up across processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MESSAGES = Counter(
    "fastmon_messages",
    "Broker messages ingested, by msg_type and outcome.",
    ["msg_type", "outcome"],
)
DEAD_LETTERS = Counter("fastmon_dead_letters", "Messages dead-lettered at ingest.")
BATCH_COMMIT_SECONDS = Histogram(
    "fastmon_batch_commit_seconds",
    "Time from ingest starting on a batch to its commit, retries included.",
)
SAMPLING_SECONDS = Histogram("fastmon_sampling_seconds", "Time of one sample_stfs task.")
OUTBOX_PENDING = Gauge(
    "fastmon_outbox_pending", "Outbox rows not yet sent.", multiprocess_mode="mostrecent"
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "fastmon_outbox_oldest_seconds",
    "Age of the oldest unsent outbox row (0: none).",
    multiprocess_mode="mostrecent",
)
READ_SECONDS = Histogram(
    "fastmon_read_seconds", "Reading one STF's sampled ranges, by protocol.", ["protocol"]
)
READ_BYTES = Counter(
    "fastmon_read_bytes", "Bytes of sampled ranges read, by protocol.", ["protocol"]
)
SAMPLES_HELD_BACK = Counter(
    "fastmon_samples_held_back",
    "TF samples a sampling policy's caps held back, by cap (fastmon.sampling.caps).",
    ["cap"],
)
WEBSOCKET_CLIENTS = Gauge(
    "fastmon_websocket_clients", "Live pages connected.", multiprocess_mode="livesum"
)
ALARMS = Counter(
    "fastmon_quality_alarms", "Quality alarms raised and cleared, by check.", ["check", "action"]
)
LIVE_EVENTS_OVERFLOWED = Counter(
    "fastmon_live_events_overflowed",
    "Live events that found a client's queue full (read back from the database later).",
)


def set_outbox_lag(pending: int, oldest: float | None) -> None:
    OUTBOX_PENDING.set(pending)
    OUTBOX_OLDEST_SECONDS.set(oldest or 0.0)


def metrics_view(request: HttpRequest, collectors: Iterable[Collector] = ()) -> HttpResponse:
    """Prometheus text format; summed over every process when PROMETHEUS_MULTIPROC_DIR is set.
    ``collectors`` add figures read at each scrape (the URLconf gives them)."""
    registry = REGISTRY
    if path := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
    read_now = CollectorRegistry()
    for collector in collectors:
        read_now.register(collector)
    return HttpResponse(
        generate_latest(registry) + generate_latest(read_now), content_type=CONTENT_TYPE_LATEST
    )
