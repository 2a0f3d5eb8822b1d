"""A run's fast-processing parameters, as the workflow sets them (``fast_processing``:
``stf_sampling_rate``, ``slices_per_sample``, ``num_tf_per_slice``, ``target_worker_count``,
...). They come in ``run_imminent``'s ``workflow_params`` when present, else from swf-monitor's
workflow execution, as the testbed's fast-processing agent reads them. A run's
``stf_sampling_rate`` then shapes its sampling (``policy_overrides``), recorded with each sample.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from django.utils import timezone

from fastmon.models import Run
from fastmon.outbox import swf_monitor

logger = logging.getLogger("fastmon.processing")

# The workflow's fast_processing parameters the testbed's agents use.
FAST_PROCESSING_PARAMS = (
    "stf_sampling_rate", "slices_per_sample", "num_tf_per_slice", "target_worker_count",
    "core_count", "slice_processing_time", "worker_rampup_time", "worker_rampdown_time",
)  # fmt: skip
WORKFLOW_EXECUTIONS_PATH = "/api/workflow-executions/"


def fast_processing_parameters(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fast-processing parameters among a workflow's: flat (the runner's workflow_params)
    or under ``fast_processing`` (a workflow execution's parameter_values)."""
    if not isinstance(params, Mapping):
        return {}
    section = params.get("fast_processing")
    source = section if isinstance(section, Mapping) else params
    return {name: source[name] for name in FAST_PROCESSING_PARAMS if name in source}


def policy_overrides(run: Run | None) -> dict[str, Any]:
    """What the run's parameters change in its sampling policy: its STF sampling rate."""
    rate = (run.fast_processing if run else {}).get("stf_sampling_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and 0 <= rate <= 1:
        return {"stf_rate": float(rate)}
    return {}


def fetch_missing_parameters(limit: int = 5) -> int:
    """Ask swf-monitor for the parameters of runs that came without them (their workflow
    execution's ``parameter_values``); each run is asked once. Returns how many were asked."""
    runs = list(
        Run.objects.filter(parameters_checked_at__isnull=True, fast_processing={})
        .exclude(execution_id="")
        .order_by("-id")[:limit]
    )
    for run in runs:
        path = f"{WORKFLOW_EXECUTIONS_PATH}{quote(run.execution_id, safe='')}/"
        answer = swf_monitor.call("GET", path)  # MonitorUnavailable: asked again next round
        found = answer.json() if answer.ok else None
        params = fast_processing_parameters((found or {}).get("parameter_values"))
        if params:
            logger.info("run %s: fast-processing parameters %s", run.run_number, params)
        run.fast_processing = {**params, **run.fast_processing}
        run.parameters_checked_at = timezone.now()
        run.save(update_fields=["fast_processing", "parameters_checked_at", "updated_at"])
    return len(runs)
