"""A run's fast-processing parameters, as the workflow sets them, shape its sampling."""

from __future__ import annotations

import json
import logging

import pytest

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import Run, TfSample
from fastmon.processing.parameters import fast_processing_parameters
from fastmon.sampling.service import sample_stfs
from fastmon.testing.announcing import announce
from fastmon.testing.messages import EXAMPLE_RUN, example


@pytest.mark.django_db
def test_the_runs_workflow_parameters_shape_its_sampling_and_are_recorded() -> None:
    """``stf_sampling_rate`` from run_imminent's workflow_params: 0 takes only the first STF
    of the run (the policy's always-first override), and each sample records the override."""
    ingest_message(json.dumps(example(
        "run_imminent", workflow_params={"stf_sampling_rate": 0.0, "num_tf_per_slice": 3,
                                         "daq_state": "ignored"})))  # fmt: skip
    assert Run.objects.get().fast_processing == {"stf_sampling_rate": 0.0, "num_tf_per_slice": 3}
    names = announce("stf_ready", EXAMPLE_RUN, 1, 2, 3)
    report = sample_stfs(names)
    assert (report.sampled, report.skipped) == (1, 2)
    assert {tuple(s.policy_overrides.items()) for s in TfSample.objects.all()} == {
        (("stf_rate", 0.0),)}  # fmt: skip


def test_a_parameter_that_is_not_a_number_is_left_out_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Counts, rates and seconds: a boolean, a string, NaN or a thousand-digit integer is not
    one, and a run keeps (and its page shows) only numbers."""
    params = {"fast_processing": {
        "core_count": 4, "target_worker_count": True, "num_tf_per_slice": "2" * 1000,
        "slice_processing_time": float("nan"), "worker_rampup_time": 10**1000,
        "worker_rampdown_time": None,
    }}  # fmt: skip
    with caplog.at_level(logging.WARNING, "fastmon.processing"):
        assert fast_processing_parameters(params) == {"core_count": 4}
    said = caplog.text
    assert "target_worker_count left out: 4 bytes of bool" in said
    assert "num_tf_per_slice left out: 1002 bytes of str" in said
    assert "slice_processing_time left out" in said and "worker_rampup_time left out" in said
    assert "worker_rampdown_time" not in said  # null: not set, nothing to say
