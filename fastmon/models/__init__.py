"""fastmon's data, a module per concept, each named for the package that owns the concept:
runs and STF files (``runs``), TF samples and their policies (``sampling``), per-run counters
(``statistics``), dead letters, subscribers, the outbox, the fast-processing stage's slices
(``processing``), data quality (check states, flags, alarms), content monitoring's histograms
(``content``), live events (``live``) and the consumers' status rows (``runtime``). The bottom
layer: it imports nothing else of fastmon.

Natural keys (run number, STF file name, TF file name, slice file name) are unique, so
redelivered messages update rows instead of duplicating them. Every table is ``fastmon_*``.
"""

from fastmon.models.content import ContentCycle, ContentPartial, ContentReference, RunContent
from fastmon.models.dead_letters import DeadLetter
from fastmon.models.live import LiveEvent
from fastmon.models.outbox import OutboxMessage, OutboxQuerySet
from fastmon.models.processing import Slice
from fastmon.models.quality import Alarm, CheckState, QualityFlag
from fastmon.models.runs import Run, StfFile
from fastmon.models.runtime import ConsumerStatus
from fastmon.models.sampling import SamplingPolicy, TfSample
from fastmon.models.statistics import RunCounter
from fastmon.models.subscribers import Subscriber

__all__ = [
    "Alarm", "CheckState", "ConsumerStatus", "ContentCycle", "ContentPartial", "ContentReference",
    "DeadLetter",
    "LiveEvent", "OutboxMessage", "OutboxQuerySet", "QualityFlag", "Run", "RunContent",
    "RunCounter", "SamplingPolicy", "Slice", "StfFile", "Subscriber", "TfSample",
]  # fmt: skip
