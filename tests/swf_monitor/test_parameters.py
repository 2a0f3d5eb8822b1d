"""The runs' workflow parameters read from swf-monitor (a stand-in on loopback), for runs whose
``run_imminent`` came without them."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import override_settings

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import Run
from fastmon.swf_monitor.parameters import fetch_missing_parameters
from fastmon.testing.messages import EXAMPLE_RUN, example
from fastmon.testing.swf_monitor import SwfMonitorStandIn


@pytest.mark.django_db
def test_parameters_missing_from_the_run_are_asked_of_swf_monitor_once() -> None:
    monitor = SwfMonitorStandIn()
    monitor.workflow_executions["stf_datataking-daq-0049"] = {
        "fast_processing": {"stf_sampling_rate": 0.5, "target_worker_count": 8},
        "daq_state_machine": {"physics_period_count": 3},
    }
    monitor.start()
    try:
        ingest_message(json.dumps(example("run_imminent")))  # no workflow_params
        ingest_message(json.dumps(example("run_imminent", run_id=EXAMPLE_RUN + 1,
                                          execution_id="unknown-execution")))  # fmt: skip
        with override_settings(FASTMON={**settings.FASTMON, "SWF_MONITOR_URL": monitor.url}):
            assert fetch_missing_parameters() == 2
            assert fetch_missing_parameters() == 0  # each run asked once
    finally:
        monitor.stop()
    known, unknown = Run.objects.order_by("run_number")
    assert known.fast_processing == {"stf_sampling_rate": 0.5, "target_worker_count": 8}
    assert unknown.fast_processing == {} and unknown.parameters_checked_at is not None
