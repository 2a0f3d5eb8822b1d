"""The testbed's example messages, shipped with the package (``docs/wire-formats.md``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).parent / "examples"

# The order a run's messages arrive in on the testbed's bus.
RUN_ORDER = [
    "run_imminent", "start_run", "stf_gen", "stf_gen_daqsim", "stf_ready", "pause_run",
    "stf_ready_no_filename", "tf_file_registered", "end_run",
]  # fmt: skip


@cache
def _load(name: str) -> str:
    return (EXAMPLES_DIR / f"{name}.json").read_text()


def example_body(name: str) -> str:
    """The raw body of one example, e.g. ``example_body("stf_ready")``."""
    return _load(name)


def example(name: str, **changes: Any) -> dict[str, Any]:
    """One example as a dict, with fields changed or (``field=None``) kept null."""
    return {**json.loads(_load(name)), **changes}


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES_DIR.glob("*.json"))


def msg_types(bodies: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ``msg_type`` of each body, in order."""
    return [body["msg_type"] for body in bodies]


# -- STF announcements ---------------------------------------------------------------------------


def stf_name(run: int, sequence: int) -> str:
    """An STF's file name as the testbed's DAQ makes it: ``swf.<run>.<sequence:06d>.stf``
    (e.g. ``swf.101993.000001.stf``)."""
    return f"swf.{run}.{sequence:06d}.stf"


def tf_sample_name(run: int, sequence: int, number: int) -> str:
    """TF sample ``number`` (from 1) of STF ``sequence`` of ``run``, named as the testbed names
    it: ``swf.<run>.<sequence:06d>_tf_<number:03d>.tf``."""
    return f"{stf_name(run, sequence).removesuffix('.stf')}_tf_{number:03d}.tf"


def stf_example(name: str, run: int, sequence: int, **changes: Any) -> dict[str, Any]:
    """The example ``name`` (``stf_gen``, ``stf_ready``, ...) announcing STF ``sequence`` of
    ``run``, under its name (``stf_name``), with ``changes``."""
    return example(name, run_id=run, sequence=sequence, filename=stf_name(run, sequence),
                   **changes)  # fmt: skip


def stf_body(name: str, run: int, sequence: int, **changes: Any) -> str:
    """``stf_example`` as the raw body a broker carries."""
    return json.dumps(stf_example(name, run, sequence, **changes))


# -- the fast-processing stage -------------------------------------------------------------------

# The run and TF sample of the examples, and when their slices are queued.
EXAMPLE_RUN = 101993
EXAMPLE_SAMPLE = "swf.101993.000001_tf_001.tf"
SLICES_QUEUED_AT = datetime(2026, 11, 20, 14, 5, tzinfo=UTC)


def _slice_name(number: int) -> str:
    return f"{EXAMPLE_SAMPLE.removesuffix('.tf')}_slice_{number:03d}.tf"


def _naive(at: datetime) -> str:
    return at.replace(tzinfo=None).isoformat()


def slice_body(number: int, req_id: str | None = None, at: datetime = SLICES_QUEUED_AT) -> str:
    """The fast-processing agent's ``slice`` message for slice ``number`` of the example sample
    (two TFs each), queued ``at``, field for field."""
    return json.dumps({
        "msg_type": "slice", "run_id": EXAMPLE_RUN, "created_at": _naive(at),
        "content": {
            "run_id": EXAMPLE_RUN, "execution_id": "stf_datataking-daq-0049",
            "req_id": req_id or str(uuid.uuid4()), "filename": "swf.101993.000001.stf",
            "tf_filename": _slice_name(number), "slice_id": number,
            "start": 2 * number, "end": 2 * number + 1, "tf_count": 2, "state": "queued",
            "substate": "new",
        },
    })  # fmt: skip


def slice_result_body(number: int, state: str = "done", seconds: float = 30.0,
                      worker: str = "wn01", **metrics: Any) -> str:  # fmt: skip
    """A PanDA worker's ``slice_result`` for slice ``number`` of the example sample, answered
    ``seconds`` after the slices were queued, field for field."""
    answered = _naive(SLICES_QUEUED_AT + timedelta(seconds=seconds))
    return json.dumps({
        "msg_type": "slice_result", "run_id": EXAMPLE_RUN, "created_at": answered,
        "content": {
            "state": state, "hostname": worker, "panda_id": 7001, "panda_task_id": 91,
            "processed_at": answered,
            "result": {"result": {
                "slice_id": number, "tf_filename": _slice_name(number),
                "processed": state == "done", "origin_message": {}, "metrics": metrics,
                "payload_result": {"ok": True},
            }},
        },
    })  # fmt: skip
