"""The runs' workflow parameters read from swf-monitor, for runs whose ``run_imminent`` came
without them: their workflow execution's ``parameter_values``, as the testbed's fast-processing
agent reads them (what they mean and change: ``fastmon.processing.parameters``)."""

from __future__ import annotations

import logging
from urllib.parse import quote

from django.utils import timezone

from fastmon.models import Run
from fastmon.processing.parameters import fast_processing_parameters
from fastmon.swf_monitor import client

logger = logging.getLogger("fastmon.processing")

WORKFLOW_EXECUTIONS_PATH = "/api/workflow-executions/"


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
        answer = client.call("GET", path)  # MonitorUnavailable: asked again next round
        found = answer.json() if answer.ok else None
        params = fast_processing_parameters((found or {}).get("parameter_values"))
        if params:
            logger.info("run %s: fast-processing parameters %s", run.run_number, params)
        run.fast_processing = {**params, **run.fast_processing}
        run.parameters_checked_at = timezone.now()
        run.save(update_fields=["fast_processing", "parameters_checked_at", "updated_at"])
    return len(runs)
