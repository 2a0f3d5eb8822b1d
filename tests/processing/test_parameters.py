"""A run's fast-processing parameters, as the workflow sets them, shape its sampling."""

from __future__ import annotations

import json

import pytest

from fastmon.ingest.pipeline import ingest_message
from fastmon.models import Run, TfSample
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
