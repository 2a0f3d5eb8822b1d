"""STFs sampled through the broker by run_fastmon's own sampler, for tests of remote reads:
each written (pseudo-random bytes) and announced by an ``stf_ready`` at a URL with its TF
offsets, published to a test's topic, and what became of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fastmon.models import StfFile, TfSample
from fastmon.simulator.files import write_stf_file
from fastmon.testing.messages import stf_body, stf_name
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

RUN, TFS, SIZE = 100830, 10, 1024 * 1024
OFFSETS = [n * SIZE // TFS for n in range(TFS + 1)]


class ThroughBroker:
    """run_fastmon sampling on its own (SAMPLING_WORKERS "run_fastmon") what a test publishes
    to ``topic``, with ``start_process`` and ``publish`` (the tests' fixtures)."""

    def __init__(
        self,
        start_process: Callable[..., ServiceProcess],
        publish: Callable[[str, Iterable[str]], None],
        topic: str,
    ) -> None:
        self.start_process, self.send, self.topic = start_process, publish, topic
        self.consumer: ServiceProcess | None = None

    @staticmethod
    def stf(directory: Path, sequence: int, url: str) -> str:
        """STF ``sequence`` of the run written in ``directory`` and its stf_ready announcing it
        at ``url`` (its name appended when ``url`` ends with "/"), with its TF offsets (no
        index read: straight to the sampled ranges)."""
        name = stf_name(RUN, sequence)
        write_stf_file(directory / name, SIZE, seed=sequence)
        file_url = f"{url}{name}" if url.endswith("/") else url
        return stf_body("stf_ready", RUN, sequence, file_url=file_url, size_bytes=SIZE,
                        tf_count=TFS, tf_offsets=OFFSETS)  # fmt: skip

    def start(self, data_roots: list[str], **changes: Any) -> ServiceProcess:
        """run_fastmon on the topic, sampling under ``data_roots``, once it has subscribed."""
        self.consumer = self.start_process(consumer_settings(
            self.topic, SAMPLING_ENABLED=True, SAMPLING_WORKERS="run_fastmon",
            DATA_ROOTS=data_roots, RETRY_MIN_S=0.05, **changes,
        ))  # fmt: skip
        self.consumer.wait_for_log(f"subscribed to {self.topic}")
        return self.consumer

    def publish(self, bodies: Iterable[str]) -> None:
        self.send(self.topic, bodies)

    def wait_sampled(self, count: int, timeout: float) -> None:
        """Until ``count`` STFs are done with (sampled, or given up)."""
        assert self.consumer is not None
        wait_until(lambda: StfFile.objects.filter(sampled_at__isnull=False).count() >= count,
                   timeout, f"{count} STFs sampled", context=self.consumer.output)  # fmt: skip

    @staticmethod
    def outcome(sequence: int) -> tuple[str, str]:
        """An STF's status and why its samples are estimated ("" when they were read)."""
        stf = StfFile.objects.get(stf_filename=stf_name(RUN, sequence))
        sample = TfSample.objects.filter(stf=stf).first()
        return stf.status, sample.metadata.get("estimated_because", "") if sample else ""
