"""Per-run counters of TF samples, kept in the transaction that writes what they count: a
sample stored (``count_new_samples``), its status moved (``count_status_moves``), its
``tf_file_registered`` gone out (``count_published``). ``recount`` counts again from the samples
themselves: for data stored before the counters existed, and to repair them.

Names: ``samples``, ``tfs``, ``bytes``, ``estimated``, ``status:<status>``,
``state:["<state>", "<substate>"]`` (its STF's DAQ state when sampled; should an announcement
change an STF's state afterwards, ``fastmon_recount`` brings the counters to the new one),
``published:<bucket>`` (sampled-to-published latency, ``histogram``) and ``held_back:<cap>``
(samples a policy's cap held back, ``fastmon.sampling.caps``: not in the samples, so ``recount``
keeps them as they are)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from django.apps import apps as installed_apps
from django.db import transaction

from fastmon.models import RunCounter
from fastmon.statistics.percentiles import bucket_of

SAMPLES, TFS, BYTES, ESTIMATED = "samples", "tfs", "bytes", "estimated"
STATUS, STATE, PUBLISHED, HELD_BACK = "status:", "state:", "published:", "held_back:"

# (run id, counter name) -> amount. At run time the plain class, which ``Deltas()`` builds.
if TYPE_CHECKING:
    Deltas = Counter[tuple[int, str]]
else:
    Deltas = Counter


class CountedSample(NamedTuple):
    """What the counters take from one sample."""

    run_id: int | None
    tf_count: int
    file_size_bytes: int | None
    size_estimated: bool
    status: str
    state: str
    substate: str
    created_at: datetime | None = None
    published_at: datetime | None = None


def state_name(state: str, substate: str) -> str:
    # JSON: a state may hold any character, the name must split back exactly.
    return STATE + json.dumps([state, substate])


def published_name(created_at: datetime, published_at: datetime) -> str:
    return PUBLISHED + bucket_of((published_at - created_at).total_seconds())


def sample_deltas(samples: Iterable[CountedSample], deltas: Deltas | None = None) -> Deltas:
    """What these samples add to their runs' counters (samples of no run count nowhere)."""
    deltas = Deltas() if deltas is None else deltas
    for sample in samples:
        run = sample.run_id
        if run is None:
            continue
        deltas[run, SAMPLES] += 1
        deltas[run, TFS] += sample.tf_count
        deltas[run, BYTES] += sample.file_size_bytes or 0
        deltas[run, ESTIMATED] += sample.size_estimated
        deltas[run, STATUS + sample.status] += 1
        deltas[run, state_name(sample.state, sample.substate)] += 1
        if sample.created_at and sample.published_at:
            deltas[run, published_name(sample.created_at, sample.published_at)] += 1
    return deltas


def count_new_samples(samples: Iterable[Any]) -> None:
    """TF samples just stored (their ``stf`` loaded): counted in the caller's transaction."""
    add(sample_deltas(
        CountedSample(s.run_id, s.tf_count, s.file_size_bytes, s.size_estimated, s.status,
                    s.stf.state, s.stf.substate)
        for s in samples
    ))  # fmt: skip


def count_status_moves(moves: Iterable[tuple[int | None, str, str]]) -> None:
    """Samples whose status moved, as ``(run id, old status, new status)``."""
    deltas = Deltas()
    for run, old, new in moves:
        if run is not None and old != new:
            deltas[run, STATUS + old] -= 1
            deltas[run, STATUS + new] += 1
    add(deltas)


def count_published(samples: Iterable[tuple[int | None, datetime, datetime]]) -> None:
    """Samples first published, as ``(run id, created at, published at)``."""
    add(Deltas(
        (run, published_name(created, published))
        for run, created, published in samples
        if run is not None
    ))  # fmt: skip


def add(deltas: Mapping[tuple[int, str], int]) -> None:
    """Add to the counters in one statement, creating those missing. Rows are taken in one
    order (run, name), so two writers adding to the same counters never deadlock."""
    rows = sorted((key, amount) for key, amount in deltas.items() if amount)
    if not rows:
        return
    table = RunCounter._meta.db_table
    placeholders = ", ".join(["(%s, %s, %s)"] * len(rows))
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{table}" (run_id, name, value) VALUES {placeholders} '
            f'ON CONFLICT (run_id, name) DO UPDATE SET value = "{table}".value + excluded.value',
            [part for (run, name), amount in rows for part in (run, name, amount)],
        )


def counters_of(run_id: int) -> dict[str, int]:
    return dict(RunCounter.objects.filter(run_id=run_id).values_list("name", "value"))


def recount(run_ids: Iterable[int] | None = None, apps: Any = installed_apps) -> int:
    """Count these runs' samples again (all runs: None) and replace their counters; returns
    the counters written. Writers of samples wait meanwhile (the counters table is locked), so
    no increment falls between the count and its storing. ``apps``: a migration's models."""
    TfSample = apps.get_model("fastmon", "TfSample")
    Counters = apps.get_model("fastmon", "RunCounter")
    with transaction.atomic():
        connection = transaction.get_connection()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f'LOCK TABLE "{Counters._meta.db_table}" IN EXCLUSIVE MODE')
        samples = TfSample.objects.exclude(run=None).order_by()
        counters = Counters.objects.exclude(name__startswith=HELD_BACK)
        if run_ids is not None:
            samples = samples.filter(run_id__in=list(run_ids))
            counters = counters.filter(run_id__in=list(run_ids))
        facts = samples.values_list(
            "run_id", "tf_count", "file_size_bytes", "size_estimated", "status", "stf__state",
            "stf__substate", "created_at", "published_at",
        )  # fmt: skip
        deltas = sample_deltas(CountedSample(*row) for row in facts.iterator(chunk_size=20_000))
        counters.delete()
        Counters.objects.bulk_create(
            [Counters(run_id=run, name=name, value=n) for (run, name), n in deltas.items()],
            batch_size=1000,
        )
    return len(deltas)
