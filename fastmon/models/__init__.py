"""fastmon's data, a module per concept: runs and STF files, TF samples and their policies,
per-run counters, dead letters and what goes out (subscribers, the outbox), the fast-processing
stage's slices, data quality (check states, flags, alarms), and fastmon's status (live
events, consumers).

Natural keys (run number, STF file name, TF file name, slice file name) are unique, so
redelivered messages update rows instead of duplicating them. Every table is ``fastmon_*``.
"""

from fastmon.models.delivery import DeadLetter, OutboxMessage, OutboxQuerySet, Subscriber
from fastmon.models.processing import Slice
from fastmon.models.quality import Alarm, CheckState, QualityFlag
from fastmon.models.runs import Run, StfFile
from fastmon.models.samples import SamplingPolicy, TfSample
from fastmon.models.statistics import RunCounter
from fastmon.models.status import ConsumerStatus, LiveEvent

__all__ = [
    "Alarm", "CheckState", "ConsumerStatus", "DeadLetter", "LiveEvent", "OutboxMessage",
    "OutboxQuerySet", "QualityFlag", "Run", "RunCounter", "SamplingPolicy", "Slice", "StfFile",
    "Subscriber", "TfSample",
]  # fmt: skip
