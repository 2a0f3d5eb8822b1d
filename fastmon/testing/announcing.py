"""STFs announced in tests as if their messages had arrived: ingested through the one door
(``fastmon.ingest.pipeline``), with the testbed's example bodies (``messages``). Needs Django
set up and a database."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastmon.inbound.messages import InboundMessage
from fastmon.ingest.pipeline import ingest_batch, ingest_message
from fastmon.sampling.service import sample_stfs
from fastmon.testing.messages import example_body, stf_body, stf_name


def announce(
    name: str,
    run: int,
    *sequences: int,
    data_dir: Path | None = None,
    together: bool = False,
    **changes: Any,
) -> list[str]:
    """Ingest the example ``name`` (``stf_gen``, ``stf_ready``) for each STF ``sequences`` of
    ``run`` (``messages.stf_example``, with ``changes``), one message at a time as a broker
    delivers them, or ``together`` in one batch (one transaction, as a consumer's batch).
    ``data_dir``: the directory the STF files lie in, each announced by its ``file_url`` there.
    Returns the STFs' file names."""
    names = [stf_name(run, sequence) for sequence in sequences]
    bodies = [
        stf_body(name, run, sequence, **changes, **_file_url(data_dir, stf))
        for sequence, stf in zip(sequences, names, strict=True)
    ]
    if together:
        ingest_batch(InboundMessage(body) for body in bodies)
    else:
        for body in bodies:
            ingest_message(body)
    return names


def _file_url(data_dir: Path | None, stf: str) -> dict[str, str]:
    return {} if data_dir is None else {"file_url": (data_dir / stf).as_uri()}


def sampled_run(
    stfs: int = 3, run: int = 101993, state: str = "physics", missing: Iterable[int] = ()
) -> list[str]:
    """A run (its ``run_imminent``) whose STFs 1 to ``stfs`` were announced ready in ``state``
    and sampled, but for the sequence numbers ``missing``; their file names. Sampling reads no
    file: the samples are metadata-only."""
    ingest_message(example_body("run_imminent").replace("101993", str(run)))
    skipped = set(missing)
    sequences = [n for n in range(1, stfs + 1) if n not in skipped]
    names = announce("stf_ready", run, *sequences, substate=state)
    sample_stfs(names)
    return names
