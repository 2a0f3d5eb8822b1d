"""Run lifecycle messages through the real broker and run_fastmon: what a run keeps of a
message's free-form values is bounded, so its page and lists stay small whatever arrived."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import pytest
from rest_framework.test import APIClient

from fastmon.inbound.bounds import CUT, json_size
from fastmon.models import DeadLetter, Run
from fastmon.testing.messages import example
from fastmon.testing.processes import ServiceProcess, consumer_settings
from fastmon.testing.waiting import wait_until

RUN = 100220


@pytest.mark.django_db(transaction=True)
def test_a_mebibyte_of_run_conditions_and_workflow_parameters_is_kept_bounded(
    start_process: Callable[..., ServiceProcess],
    publish: Callable[[str, Iterable[str]], None],
    unique_topic: str,
) -> None:
    """run_conditions past STORED_JSON_MAX_BYTES are cut, the cut said in them; a workflow
    parameter that is not a number is left out, and the log says so (a page of 900 KB once)."""
    consumer = start_process(consumer_settings(unique_topic, DURABLE_SUBSCRIPTION=False))
    consumer.wait_for_log(f"subscribed to {unique_topic}")
    conditions = {"run_type": "physics", "beam": "x" * 500_000}
    parameters = {"stf_sampling_rate": 0.5, "target_worker_count": "x" * 500_000,
                  "slices_per_sample": float("nan")}  # fmt: skip
    body = json.dumps(example("run_imminent", run_id=RUN, run_conditions=conditions,
                              workflow_params=parameters))  # fmt: skip
    publish(unique_topic, [body])
    wait_until(lambda: Run.objects.filter(run_number=RUN).exists(), 20, "the run stored",
               context=consumer.output)  # fmt: skip

    run = Run.objects.get(run_number=RUN)
    assert run.run_conditions == {
        "run_type": "physics", CUT: {"bytes": json_size(conditions), "left_out": 1,
                                     "keys": ["beam"]}}  # fmt: skip
    assert run.fast_processing == {"stf_sampling_rate": 0.5}
    consumer.wait_for_log("workflow parameter target_worker_count left out: 500002 bytes of str")
    assert "workflow parameter slices_per_sample left out" in consumer.output()
    assert not DeadLetter.objects.exists()

    client = APIClient()
    page = client.get(f"/fastmon/runs/{RUN}/")
    assert page.status_code == 200 and len(page.content) < 100_000
    for answer in (client.get("/fastmon/api/runs/"), client.get(f"/fastmon/api/runs/{RUN}/")):
        assert answer.status_code == 200 and len(answer.content) < 10_000
