from __future__ import annotations

import sys
from argparse import ArgumentParser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from fastmon.inbound.messages import InboundMessage
from fastmon.ingest.pipeline import ingest_batch


class Command(BaseCommand):
    help = (
        "Ingest messages as if they came from the broker: each FILE holds one message body; "
        "'-' reads one body per line from standard input."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--destination", default="file", help="recorded on dead letters")

    def handle(self, *args: Any, files: list[str], batch_size: int, destination: str,
               **options: Any) -> None:  # fmt: skip
        headers = {"destination": destination}
        sources = list(self._bodies(files))
        for start in range(0, len(sources), batch_size):
            chunk = sources[start : start + batch_size]
            batch = ingest_batch(InboundMessage(body, headers) for _, body in chunk)
            for (name, _), result in zip(chunk, batch.results, strict=True):
                self.stdout.write(f"{name}: {result.outcome} ({result.detail})")

    def _bodies(self, files: list[str]) -> Iterator[tuple[str, bytes]]:
        for name in files:
            if name == "-":
                for number, line in enumerate(sys.stdin.buffer, 1):
                    if line.strip():
                        yield f"stdin:{number}", line.rstrip(b"\r\n")
            else:
                yield Path(name).name, Path(name).read_bytes()
