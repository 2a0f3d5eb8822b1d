"""TF samples stored, each with what it sends, in one transaction: its ``tf_file_registered``
to the testbed, a copy for every subscriber that selects it, its registration in swf-monitor
(when SWF_MONITOR_FEED is on) and its live event."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from fastmon.conf import fastmon_settings
from fastmon.database.bulk import bulk_insert, insert_rows
from fastmon.live.events import record_live_events
from fastmon.live.frames import tf_samples_event
from fastmon.models import ContentPartial, OutboxMessage, SamplingPolicy, StfFile, TfSample
from fastmon.outbox.bodies import (
    fastmon_file_body,
    fastmon_file_change,
    tf_file_registered_bodies,
)
from fastmon.quality import evaluate as quality
from fastmon.quality.framework import SampleSeen
from fastmon.sampling.checksums import ANNOUNCED, REREAD
from fastmon.sampling.ledger import policy_of
from fastmon.sampling.policy import TfRange
from fastmon.sampling.reading import ReadReport
from fastmon.statistics.counters import count_new_samples, count_status_moves
from fastmon.subscribers.rules import SampleFacts, selects
from fastmon.subscribers.service import routable_subscribers
from fastmon.swf_monitor.client import FASTMON_FILES_PATH


def tf_sample_filename(stf_filename: str, number: int) -> str:
    """The testbed's TF sample name: ``<stf name without .stf>_tf_<NNN>.tf``, from 1."""
    return f"{stf_filename.removesuffix('.stf')}_tf_{number:03d}.tf"


@dataclass(frozen=True)
class SamplePlan:
    """The TF ranges to register for one STF, and the policy version that chose them."""

    stf: StfFile
    ranges: Sequence[TfRange]
    policy: SamplingPolicy | None = None
    # What the run's workflow changed in the policy (recorded with each sample).
    overrides: Mapping[str, Any] = field(default_factory=dict)
    # What reading the STF took (None: not read, sizes estimated).
    read: ReadReport | None = None
    # The sampled TFs' histograms, stored (fastmon.content), when they were decoded.
    content: bytes | None = None


def record_tf_samples(plans: Sequence[SamplePlan]) -> list[TfSample]:
    """Store TF samples and, in the same transaction, their ``tf_file_registered`` in the outbox
    and their live events. Idempotent: samples already stored are neither stored nor announced
    again. Returns the samples stored now."""
    for plan in plans:
        tf_count = plan.stf.tf_count or fastmon_settings.DEFAULT_TF_COUNT
        for tf_range in plan.ranges:
            if not 0 <= tf_range.tf_first <= tf_range.tf_last < tf_count:
                raise ValueError(
                    f"TF range {tf_range.tf_first}..{tf_range.tf_last} is outside "
                    f"0..{tf_count - 1} of {plan.stf.stf_filename}"
                )
    named = [
        (plan, tf_sample_filename(plan.stf.stf_filename, number), tf_range)
        for plan in plans
        for number, tf_range in enumerate(plan.ranges, 1)
    ]
    policies = {plan.policy.pk: plan.policy for plan in plans if plan.policy}
    seeds = {pk: policy_of(policy).seed for pk, policy in policies.items()}  # parsed once each
    feed = feeding_monitor()
    with transaction.atomic():
        known = set(
            TfSample.objects.filter(tf_filename__in=[name for _, name, _ in named]).values_list(
                "tf_filename", flat=True
            )
        )
        samples = [
            TfSample(
                stf=plan.stf,
                run_id=plan.stf.run_id,
                tf_filename=name,
                tf_first=tf_range.tf_first,
                tf_last=tf_range.tf_last,
                tf_count=tf_range.tf_count,
                file_size_bytes=tf_range.file_size_bytes,
                checksum=tf_range.checksum,
                metadata=dict(tf_range.metadata),
                size_estimated=tf_range.size_estimated,
                tf_boundaries=plan.read.boundaries.kind if plan.read else TfSample.Boundaries.EQUAL,
                policy=plan.policy,
                seed=seeds[plan.policy.pk] if plan.policy else None,
                policy_overrides=dict(plan.overrides),
                monitor_state=TfSample.InMonitor.PENDING if feed else TfSample.InMonitor.NONE,
            )
            for plan, name, tf_range in named
            if name not in known
        ]
        bulk_insert(TfSample, samples)  # sets created_at on each
        _store_content(plans, {sample.stf_id for sample in samples})
        count_new_samples(samples)
        quality.on_samples(_seen_by_run(samples))
        insert_rows(OutboxMessage, _outgoing_for(samples, feed))
        by_stf: dict[int, list[TfSample]] = {}
        for sample in samples:
            by_stf.setdefault(sample.stf_id, []).append(sample)
        record_live_events([tf_samples_event(group) for group in by_stf.values()])
    return samples


def _store_content(plans: Sequence[SamplePlan], stored: set[int]) -> None:
    """Each STF's partial histograms, with its samples: none for a sample rolled back or
    already stored (a redelivered task), so the merger counts every sample once."""
    ContentPartial.objects.bulk_create([
        ContentPartial(run_id=plan.stf.run_id, stf_id=plan.stf.pk, data=plan.content)
        for plan in plans
        if plan.content is not None and plan.stf.run_id is not None and plan.stf.pk in stored
    ])  # fmt: skip


def _seen_by_run(samples: list[TfSample]) -> dict[int, list[SampleSeen]]:
    """What the quality checks are given: each sample with its STF's announcement-to-sample
    latency."""
    seen: dict[int, list[SampleSeen]] = {}
    for sample in samples:
        if sample.run_id is not None:
            received = sample.stf.received_at
            latency = (sample.created_at - received).total_seconds() if received else None
            others = (sample.metadata.get(key) for key in (ANNOUNCED, REREAD))
            seen.setdefault(sample.run_id, []).append(SampleSeen(
                sample.tf_filename, latency, sample.checksum, tuple(c for c in others if c)
            ))  # fmt: skip
    return seen


def feeding_monitor() -> bool:
    """SWF_MONITOR_FEED is on (and swf-monitor is named)."""
    return bool(fastmon_settings.SWF_MONITOR_FEED and fastmon_settings.SWF_MONITOR_URL)


def _outgoing_for(samples: list[TfSample], feed: bool) -> list[dict[str, Any]]:
    """Outbox rows (as values: there may be dozens per sample) for each sample's
    ``tf_file_registered`` to the testbed and a copy for every subscriber that selects it; with
    the feed on, its registration in swf-monitor first, and the others held until swf-monitor
    has stored it (``outbox.feed``)."""
    announce = tf_file_registered_bodies()
    destination = fastmon_settings.PUBLISH_DESTINATION
    subscribers = routable_subscribers()
    rows: list[dict[str, Any]] = []
    for tf_sample in samples:
        stf, run = tf_sample.stf, tf_sample.stf.run
        if feed:
            rows.append({
                "transport": OutboxMessage.Transport.SWF_MONITOR,
                "destination": FASTMON_FILES_PATH,
                "msg_type": "fastmon_file",
                "subject": tf_sample.tf_filename,
                "body": json.dumps(fastmon_file_body(stf, tf_sample)),
            })  # fmt: skip
        body = announce(stf, tf_sample)
        message: dict[str, Any] = {
            "msg_type": "tf_file_registered",
            "subject": tf_sample.tf_filename,
            "body": json.dumps(body),
            "held": feed,
        }
        rows.append({**message, "destination": destination})
        facts = SampleFacts(
            kind="tf_file_registered",
            tf_filename=tf_sample.tf_filename,
            run_number=body["run_id"],
            namespace=body["namespace"] or "",
            state=stf.state or (run.state if run else ""),  # the DAQ's state when it was taken
            substate=stf.substate or (run.substate if run else ""),
        )
        rows.extend(
            {
                **message,
                "destination": subscriber.destination,
                "subscriber_id": subscriber.pk,
                "headers": {"fastmon-subscriber": subscriber.name},
            }
            for subscriber in subscribers
            if selects(subscriber.filters, subscriber.fraction, facts)
        )
    return rows


def change_sample(sample: TfSample, values: dict[str, Any]) -> TfSample:
    """A sample's status or metadata changed here (the API's PATCH): saved, and with the feed
    on, sent to its row in swf-monitor too (after its registration, through the outbox)."""
    with transaction.atomic():
        # The status as stored, locked: the feed's sync may have moved it meanwhile.
        stored = TfSample.objects.select_for_update().values_list("status", flat=True)
        before = stored.get(pk=sample.pk)
        for name, value in values.items():
            setattr(sample, name, value)
        sample.save(update_fields=[*values, "updated_at"])
        count_status_moves([(sample.run_id, before, values.get("status", before))])
        if feeding_monitor() and sample.monitor_state != TfSample.InMonitor.NONE:
            OutboxMessage.objects.create(
                transport=OutboxMessage.Transport.SWF_MONITOR,
                destination=FASTMON_FILES_PATH,
                msg_type="fastmon_file_status",
                subject=sample.tf_filename,
                body=json.dumps(fastmon_file_change(sample)),
                held=sample.monitor_state != TfSample.InMonitor.REGISTERED,
            )
    return sample
