"""A run's fast-processing parameters, as the workflow sets them (``fast_processing``:
``stf_sampling_rate``, ``slices_per_sample``, ``num_tf_per_slice``, ``target_worker_count``,
...). They come in ``run_imminent``'s ``workflow_params`` when present, else from swf-monitor's
workflow execution (``fastmon.swf_monitor.parameters``), as the testbed's fast-processing agent
reads them. A run's
``stf_sampling_rate`` then shapes its sampling (``policy_overrides``), recorded with each sample.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastmon.inbound.bounds import json_size
from fastmon.models import Run

logger = logging.getLogger("fastmon.processing")

# The workflow's fast_processing parameters the testbed's agents use.
FAST_PROCESSING_PARAMS = (
    "stf_sampling_rate", "slices_per_sample", "num_tf_per_slice", "target_worker_count",
    "core_count", "slice_processing_time", "worker_rampup_time", "worker_rampdown_time",
)  # fmt: skip


def fast_processing_parameters(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fast-processing parameters among a workflow's: flat (the runner's workflow_params)
    or under ``fast_processing`` (a workflow execution's parameter_values). Each is a number
    (a count, a rate, seconds): any other value is left out, and the log says so, so that
    what a run keeps and shows stays a few numbers whatever a message carried."""
    if not isinstance(params, Mapping):
        return {}
    section = params.get("fast_processing")
    source = section if isinstance(section, Mapping) else params
    found = {}
    for name in FAST_PROCESSING_PARAMS:
        value = source.get(name)
        if _is_parameter(value):
            found[name] = value
        elif value is not None:
            logger.warning("workflow parameter %s left out: %d bytes of %s, not a number",
                           name, json_size(value), type(value).__name__)  # fmt: skip
    return found


def _is_parameter(value: Any) -> bool:
    """A number, not a boolean, at most 10^12 either way: not NaN, Infinity or a thousand-digit
    integer, each of which a JSON body can spell."""
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= 1e12


def policy_overrides(run: Run | None) -> dict[str, Any]:
    """What the run's parameters change in its sampling policy: its STF sampling rate."""
    rate = (run.fast_processing if run else {}).get("stf_sampling_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and 0 <= rate <= 1:
        return {"stf_rate": float(rate)}
    return {}
