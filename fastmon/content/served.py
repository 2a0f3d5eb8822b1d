"""A run's content as the API serves it: the summary with its histograms' URLs, one histogram
as UHI JSON, and ROOT files written with uproot (ROOT files without ROOT)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boost_histogram as bh
import uproot
from boost_histogram.serialization import to_uhi

from fastmon.content.histograms import Content
from fastmon.content.stored import json_default
from fastmon.models import Run, RunContent

WINDOWS = ("run", "last")


def run_content(run: Run, window: str = "run") -> Content:
    """The run's histograms as last merged (empty before the first merge); ``window="last"``:
    the moving window."""
    row = RunContent.objects.filter(run=run).first()
    data = (row.window if window == "last" else row.data) if row else b""
    return Content.loads(bytes(data)) if data else Content()


def summary(run: Run) -> dict[str, Any]:
    """The run's counts and histogram names as the merger stored them beside the bins (no
    bins decoded: pages ask for this at every cycle)."""
    row = RunContent.objects.filter(run=run).only("cycle", "merged_at", "summary").first()
    stored = dict(row.summary) if row else Content().summary()
    stored.pop("window", None)
    return {
        "run_number": run.run_number,
        "cycle": row.cycle if row else 0,
        "merged_at": row.merged_at.isoformat() if row and row.merged_at else None,
        **stored,
    }


def uhi(histogram: bh.Histogram) -> bytes:
    """UHI's JSON serialization (the Scikit-HEP schema boost-histogram reads back), compact,
    as the API sends it: encoded once, not encoded, decoded and encoded again."""
    return json.dumps(to_uhi(histogram), default=json_default, separators=(",", ":"),
                      allow_nan=False).encode()  # fmt: skip


def root_file(histograms: Mapping[str, bh.Histogram]) -> bytes:
    """A ROOT file of these histograms under their names (``BEMC/adc`` in a directory ``BEMC``;
    double storage: TH1D and TH2D)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "histograms.root"
        with uproot.recreate(path) as file:
            for name, histogram in histograms.items():
                file[name] = histogram
        return path.read_bytes()
