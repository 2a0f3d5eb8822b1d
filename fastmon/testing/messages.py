"""The testbed's example messages, shipped with the package (``docs/wire-formats.md``)."""

from __future__ import annotations

import json
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
