"""What run_fastmon counts of its committed batches: the periodic summary line, and the
Prometheus counters."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from fastmon import metrics
from fastmon.inbound.messages import Outcome
from fastmon.inbound.schema import KNOWN_TYPES

# A committed batch as the loop needs it: how many messages of each msg_type met each outcome
# (cheaper to send across from the ingest process than a result per message).
Tally = Counter[tuple[str, Outcome]]


def count_batch(tally: Mapping[tuple[str, Outcome], int]) -> None:
    """Count a committed batch into the metrics. Unknown types share one label: msg_type comes
    from the wire."""
    for (msg_type, outcome), count in tally.items():
        label = msg_type if msg_type in KNOWN_TYPES else "other"
        metrics.MESSAGES.labels(label, outcome.value).inc(count)
        if outcome is Outcome.DEAD_LETTERED:
            metrics.DEAD_LETTERS.inc(count)


@dataclass
class Stats:
    """Counters for the periodic summary line; reset at each line."""

    since: float = field(default_factory=time.monotonic)
    messages: int = 0
    batches: int = 0
    dead_letters: int = 0
    ignored: int = 0
    unacked: int = 0
    published: int = 0

    def count(self, frames: int, tally: Tally, acked: int) -> None:
        """A committed batch: its frames, its tally, and how many of the frames were acked."""
        for (_, outcome), count in tally.items():
            if outcome is Outcome.DEAD_LETTERED:
                self.dead_letters += count
            elif outcome in (Outcome.IGNORED, Outcome.FILTERED):
                self.ignored += count
        self.messages += frames
        self.batches += 1
        self.unacked += frames - acked

    def line(self, backlog: int, lag: tuple[int, float | None]) -> str:
        elapsed = max(time.monotonic() - self.since, 1e-9)
        pending, oldest = lag
        age = f", oldest {oldest:.1f}s" if oldest is not None else ""
        return (
            f"{self.messages / elapsed:.1f} msg/s, "
            f"batch {self.messages / self.batches if self.batches else 0:.1f}, "
            f"backlog {backlog}, dead letters {self.dead_letters}, ignored {self.ignored}, "
            f"left to redelivery {self.unacked}, outbox {pending} pending{age}, "
            f"published {self.published}"
        )
