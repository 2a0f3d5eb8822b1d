"""The wire formats page documents every example message the package ships."""

from __future__ import annotations

from pathlib import Path

from fastmon.testing.messages import example_names

ROOT = Path(__file__).resolve().parents[2]


def test_the_wire_formats_document_every_packaged_example() -> None:
    """The examples are the testbed's bodies, kept in the repository beside their description."""
    formats = (ROOT / "docs" / "wire-formats.md").read_text()
    for name in example_names():
        assert f"fastmon/testing/examples/{name}.json" in formats, name
