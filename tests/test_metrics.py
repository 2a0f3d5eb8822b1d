"""The Prometheus metrics page adds up what run_fastmon's process counted."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from fastmon.models import DeadLetter, StfFile
from fastmon.testing.messages import stf_body
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

StartProcess = Callable[..., ServiceProcess]


def test_metrics_add_up_what_the_consumer_process_counted(
    start_process: StartProcess,
    publish: Callable[[str, Iterable[str]], None],
    unique_topic: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the consumer inherits it
    consumer = start_process(consumer_settings(unique_topic))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    publish(unique_topic, [*(stf_body("stf_gen", 100100, n) for n in range(1, 6)), "not json"])
    wait_until(lambda: DeadLetter.objects.exists() and StfFile.objects.count() == 5, 20,
               "ingested", context=consumer.output)  # fmt: skip

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = Client().get("/fastmon/metrics/").content.decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    values = wait_until(
        lambda: (s := samples()).get(("fastmon_messages_total",
                                      (("msg_type", "stf_gen"), ("outcome", "stored")))) == 5 and s,
        10, "message counts in /metrics/",
    )  # fmt: skip
    assert (
        values[("fastmon_messages_total", (("msg_type", "other"), ("outcome", "dead_lettered")))]
        == 1
    )
    assert values[("fastmon_dead_letters_total", ())] == 1
    assert values[("fastmon_batch_commit_seconds_count", ())] >= 1
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0
