"""Sampling STFs: the body of the Celery task and of run_fastmon's sampler. The policy chooses
TF ranges, the file is read (outside any transaction), and the samples are registered with what
they send; STFs already sampled, or being sampled by another worker, are left alone."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeGuard

from django.db import transaction
from django.db.models import F, Min, QuerySet
from django.utils import timezone

from fastmon import metrics
from fastmon.conf import fastmon_settings
from fastmon.content.decoding import ReadAt, configured_decoder
from fastmon.content.task import sampled_content
from fastmon.database.bulk import update_each
from fastmon.database.outages import is_outage
from fastmon.live.events import record_live_events
from fastmon.live.frames import alarm_event
from fastmon.models import SamplingPolicy, StfFile, TfSample
from fastmon.processing.parameters import policy_overrides
from fastmon.sampling.caps import Caps, HeldBack, count_held_back
from fastmon.sampling.checksums import ANNOUNCED, REREAD, announced_range_checksums
from fastmon.sampling.ledger import current_policy, policy_of
from fastmon.sampling.policy import Policy, StfFacts, TfRange, sample
from fastmon.sampling.reading import Boundaries, ReadReport, Unreachable, read_stf
from fastmon.sampling.roots import RemoteError
from fastmon.sampling.samples import SamplePlan, record_tf_samples
from fastmon.sampling.spans import EQUAL, TfBoundaries

logger = logging.getLogger("fastmon.sampling")


_SAMPLABLE = [StfFile.Status.ANNOUNCED, StfFile.Status.READY]


@dataclass(frozen=True)
class SamplingReport:
    sampled: int = 0
    skipped: int = 0
    failed: int = 0
    samples: int = 0
    bytes_read: int = 0
    held_back: int = 0  # samples the policy's caps held back


def sample_stfs(stf_filenames: Sequence[str]) -> SamplingReport:
    """Sample these STFs under their policy and register the samples. Idempotent: an STF
    already sampled (or being sampled by another worker) is left alone.

    Each run counts an attempt first, in a transaction of its own: a worker that dies while
    sampling leaves the count behind, and past SAMPLING_MAX_ATTEMPTS the STF is marked failed
    instead of killing workers for ever.
    """
    names = list(dict.fromkeys(stf_filenames))
    pending = StfFile.objects.filter(
        stf_filename__in=names, sampled_at__isnull=True, status__in=_SAMPLABLE
    )
    with transaction.atomic():
        pending.update(sampling_attempts=F("sampling_attempts") + 1)
        failed = pending.filter(sampling_attempts__gt=fastmon_settings.SAMPLING_MAX_ATTEMPTS)
        given_up = list(failed.values_list("stf_filename", "run__run_number"))
        failed_names = [name for name, _ in given_up]
        failed.update(status=StfFile.Status.FAILED, sampled_at=timezone.now())
        attempts = fastmon_settings.SAMPLING_MAX_ATTEMPTS
        record_live_events([
            alarm_event(run_number, f"gave up sampling {name} after {attempts} attempts",
                        stf_filename=name)
            for name, run_number in given_up
        ])  # fmt: skip
    for name in failed_names:
        logger.error("gave up sampling %s after %d attempts", name,
                     fastmon_settings.SAMPLING_MAX_ATTEMPTS)  # fmt: skip

    # Files are read outside any transaction: while a worker reads, the consumer may need to
    # lock these rows for a redelivered announcement.
    stfs = list(pending.select_related("run").order_by("id"))
    plans, skipped, bytes_read, held_back = _plan_samples(stfs)
    try:
        samples = _register_sampled(pending, plans, skipped, held_back)
    except Exception as exc:
        if is_outage(exc):
            raise
        # One STF must not fail its neighbours: register them one by one; the culprit stays
        # unsampled (its attempts count towards giving up) and the log says why.
        logger.exception("registering samples of %d STFs failed; one by one now", len(stfs))
        samples = []
        for stf in stfs:
            try:
                samples += _register_sampled(
                    pending,
                    [plan for plan in plans if plan.stf.pk == stf.pk],
                    [pk for pk in skipped if pk == stf.pk],
                    {pk: held for pk, held in held_back.items() if pk == stf.pk},
                )
            except Exception as alone:
                if is_outage(alone):
                    raise
                logger.exception("could not register the samples of %s", stf.stf_filename)
    sampled = len({sample.stf_id for sample in samples})
    held = sum(sum(by_cap.values()) for _, by_cap in held_back.values())
    return SamplingReport(sampled, len(skipped), len(failed_names), len(samples), bytes_read, held)


def _register_sampled(
    pending: QuerySet[StfFile], plans: list[SamplePlan], skipped: list[int], held_back: HeldBack
) -> list[TfSample]:
    """Store the planned samples and mark their STFs, and count what the caps held back of
    them, in one transaction; only for STFs still unsampled once locked (another worker may
    have been faster)."""
    with transaction.atomic():
        ours = set(
            pending.filter(pk__in=[plan.stf.pk for plan in plans] + skipped)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        plans = [plan for plan in plans if plan.stf.pk in ours]
        samples = record_tf_samples(plans)
        now = timezone.now()
        # Sampled, and what reading each took (None: not read): the proof of a partial read.
        update_each(
            StfFile, {"status": StfFile.Status.SAMPLED, "sampled_at": now},
            ["bytes_read", "file_bytes", "read_protocol", "read_seconds"],
            {plan.stf.pk: [plan.read.bytes_read, plan.read.file_size, plan.read.protocol,
                           plan.read.seconds] if plan.read else [None, None, "", None]
             for plan in plans},
        )  # fmt: skip
        StfFile.objects.filter(pk__in=[pk for pk in skipped if pk in ours]).update(
            status=StfFile.Status.SKIPPED, sampled_at=now
        )
        count_held_back({pk: held for pk, held in held_back.items() if pk in ours})
    return samples


def _plan_samples(stfs: list[StfFile]) -> tuple[list[SamplePlan], list[int], int, HeldBack]:
    first_sequences = dict(
        StfFile.objects.filter(run_id__in={stf.run_id for stf in stfs if stf.run_id})
        .values("run_id")
        .annotate(first=Min("sequence"))
        .values_list("run_id", "first")
    )
    policies: dict[tuple[str, str], tuple[SamplingPolicy, Policy] | None] = {}
    caps = Caps()
    plans, skipped, bytes_read = [], [], 0
    for stf in stfs:
        try:
            first = first_sequences.get(stf.run_id) if stf.run_id is not None else None
            plan = _plan_one(stf, first, policies, caps)
        except Exception as exc:
            if is_outage(exc):
                raise
            # One STF must not fail its neighbours: it stays unsampled (its attempts count
            # towards giving up) and the log says why.
            logger.exception("could not plan the samples of %s", stf.stf_filename)
            continue
        if plan is None:
            skipped.append(stf.pk)
            continue
        plans.append(plan)
        bytes_read += plan.read.bytes_read if plan.read else 0
    return plans, skipped, bytes_read, caps.held_back


def _plan_one(
    stf: StfFile,
    first_sequence: int | None,
    policies: dict[tuple[str, str], tuple[SamplingPolicy, Policy] | None],
    caps: Caps,
) -> SamplePlan | None:
    """One STF's samples, measured; None when its policy does not sample it or its caps hold
    it back. ``policies`` caches each (namespace, run type)'s current policy for the round,
    ``caps`` what the round took."""
    namespace = (stf.run.namespace if stf.run else "") or fastmon_settings.NAMESPACE or ""
    run_type = str(stf.run.run_conditions.get("run_type", "")) if stf.run else ""
    if (namespace, run_type) not in policies:
        row = current_policy(namespace, run_type)
        policies[namespace, run_type] = (row, policy_of(row)) if row else None
    chosen = policies[namespace, run_type]
    if chosen is None:
        return None
    overrides = policy_overrides(stf.run)
    policy = replace(chosen[1], **overrides) if overrides else chosen[1]
    tf_count = stf.tf_count or fastmon_settings.DEFAULT_TF_COUNT
    facts = StfFacts(
        stf_filename=stf.stf_filename,
        run_number=stf.run.run_number if stf.run else None,
        sequence=stf.sequence,
        tf_count=tf_count,
        size_bytes=stf.size_bytes,
        first_of_run=stf.sequence is not None and stf.sequence == first_sequence,
    )
    ranges = caps.apply(chosen[0], policy, stf, sample(policy, facts))
    if not ranges:
        return None
    measured, report, content = _measure(stf, ranges, tf_count)
    if report is not None:
        caps.read(chosen[0], report.bytes_read)
    return SamplePlan(stf, measured, chosen[0], overrides, report, content)


def _measure(
    stf: StfFile, ranges: list[TfRange], tf_count: int
) -> tuple[list[TfRange], ReadReport | None, bytes | None]:
    """Real sizes and Adler-32 from the file, where it lives, when it is reachable, and the
    content of the sampled TFs (stored histograms); else estimated sizes, with the reason."""
    context = {"state": stf.state, "substate": stf.substate}
    spans = [(r.tf_first, r.tf_last) for r in ranges]

    content_on = fastmon_settings.CONTENT_ENABLED and stf.run_id is not None

    def read(boundaries: Boundaries, keep_up_to: int = 0) -> ReadReport:
        """Every read counts in the metrics, a second one too."""
        report = read_stf(stf.file_url, stf.stf_filename, fastmon_settings.DATA_ROOTS, tf_count,
                          spans, boundaries, keep_up_to)  # fmt: skip
        metrics.READ_SECONDS.labels(report.protocol).observe(report.seconds)
        metrics.READ_BYTES.labels(report.protocol).inc(report.bytes_read)
        return report

    try:
        report = read(
            lambda size, read_at: _tf_boundaries(stf, tf_count, size, read_at),
            fastmon_settings.CONTENT_MAX_BYTES_PER_STF if content_on else 0,
        )
    except (Unreachable, OSError, ValueError) as exc:  # ValueError: a URL Python cannot parse
        stf_size = stf.size_bytes or fastmon_settings.ESTIMATED_STF_SIZE_BYTES
        estimated = {**context, "estimated_because": str(exc)}
        return (
            [
                replace(
                    r,
                    file_size_bytes=stf_size * r.tf_count // tf_count,
                    size_estimated=True,
                    metadata=estimated,
                )
                for r in ranges
            ],
            None,
            None,
        )
    content = sampled_content(stf.stf_filename, ranges, report.kept, report.boundaries)
    # The kept bytes (up to CONTENT_MAX_BYTES_PER_STF) are decoded: let them go now, not when
    # the whole chunk of STFs is registered (40 STFs held them all at once).
    report = replace(report, kept=None)
    # A second read is for its checksums only, at the boundaries the first one found.
    again = (_read_again(lambda: read(lambda size, read_at: report.boundaries), stf.stf_filename)
             if _verified(stf.stf_filename) else None)  # fmt: skip
    announced = announced_range_checksums(
        stf.metadata.get("stf_ready", {}).get("tf_checksums"), tf_count, spans,
        report.boundaries.offsets, report.file_size,
    )  # fmt: skip
    measured = []
    for n, (r, m) in enumerate(zip(ranges, report.measured, strict=True)):
        compared = {ANNOUNCED: announced[n]} if announced[n] else {}
        if again is not None:
            compared[REREAD] = again.measured[n].checksum
        metadata = {**context, **compared}
        measured.append(replace(r, file_size_bytes=m.size_bytes, checksum=m.checksum,
                                metadata=metadata))  # fmt: skip
    return measured, report, content


def _read_again(read: Callable[[], ReadReport], stf_filename: str) -> ReadReport | None:
    """A second read, to catch storage that returns other bytes the second time (the TfChecksum
    check compares); one that fails leaves the first read's figures as they are."""
    try:
        return read()
    except (Unreachable, OSError, ValueError) as exc:
        logger.warning("second read of %s failed: %s", stf_filename, exc)
        return None


def _verified(stf_filename: str) -> bool:
    """Whether this STF's ranges are read twice (VERIFY_READ_FRACTION of them, the same ones
    whichever worker samples)."""
    return zlib.crc32(stf_filename.encode()) / 2**32 < fastmon_settings.VERIFY_READ_FRACTION


def _tf_boundaries(stf: StfFile, tf_count: int, file_size: int, read_at: ReadAt) -> TfBoundaries:
    """TF byte offsets: the announcement's (``tf_offsets``) when usable, else the file's own
    index as the decoder finds it (two small reads), else none (equal shares)."""
    offsets = stf.metadata.get("stf_ready", {}).get("tf_offsets")
    if _usable(offsets, tf_count, file_size):
        return TfBoundaries(offsets, TfSample.Boundaries.ANNOUNCED)
    try:
        found = configured_decoder().boundaries(read_at, file_size)
    except (OSError, RemoteError):
        raise  # the file itself is away: the read fails (and is retried) as a data read would
    except Exception:
        logger.exception("the decoder could not read %s's index", stf.stf_filename)
        found = None
    if _usable(found, tf_count, file_size):
        return TfBoundaries(found, TfSample.Boundaries.INDEX)
    return EQUAL


def _usable(offsets: object, tf_count: int, file_size: int) -> TypeGuard[list[int]]:
    return (
        isinstance(offsets, list)
        and len(offsets) == tf_count + 1
        and all(isinstance(o, int) for o in offsets)
        and offsets == sorted(offsets)
        and offsets[0] >= 0
        and offsets[-1] <= file_size
    )
