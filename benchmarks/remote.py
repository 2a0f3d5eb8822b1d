"""Remote partial reads: TF samples/s and sampled MB/s through fastmon's sampling over
``root://`` and over HTTP, beside the bare client reading the same ranges of the same files in
the same run (the XRootD bindings' vector read; httpx's ranged GETs), and the ratios.

    .venv/bin/python benchmarks/remote.py [--stfs 16] [--size-mib 256] [--rounds 5]

Needs the services (`scripts/services.sh up`: XRootD and nginx over FASTMON_REMOTE_DATA_DIR).
The STF files (deterministic content) are written once into the data directory and read from
the page cache by every reader alike (a warm-up read first). Each round, for each protocol: the
bare client reads the testbed policy's ranges of every file, then fastmon samples the same STFs
(sample_stfs in this process: read, Adler-32, samples and outbox rows committed). Medians of the
rounds, alternated. Target: fastmon at least 0.8 of the bare client. Uses its own database,
fastmon_bench.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["FASTMON_DB_NAME"] = "fastmon_bench"

import django  # noqa: E402

from benchmarks.consume import recreate_database  # noqa: E402

TARGET = 0.8
RUN = 100990
MIB = 1024 * 1024


def write_files(directory: Path, count: int, size: int) -> list[Path]:
    from fastmon.simulator.files import write_stf_file

    directory.mkdir(exist_ok=True)
    paths = []
    for n in range(1, count + 1):
        path = directory / f"swf.{RUN}.{n:06d}.stf"
        if not path.exists() or path.stat().st_size != size:
            write_stf_file(path, size, seed=n)
        path.read_bytes()  # into the page cache, for every reader alike
        paths.append(path)
    return paths


def spans_of(paths: list[Path], size: int) -> dict[str, list[tuple[int, int]]]:
    """The testbed policy's byte spans of each file, as fastmon will sample them."""
    from fastmon.sampling.policy import TESTBED, StfFacts, sample
    from fastmon.sampling.spans import byte_spans

    spans = {}
    for n, path in enumerate(paths, 1):
        facts = StfFacts(path.name, RUN, n, 1000, size, first_of_run=n == 1)
        ranges = [(r.tf_first, r.tf_last) for r in sample(TESTBED, facts)]
        spans[path.name] = byte_spans(1000, ranges, None, size)
    return spans


def bare_xrootd(base: str, spans: dict[str, list[tuple[int, int]]]) -> tuple[float, int]:
    from XRootD import client
    from XRootD.client.flags import OpenFlags

    from fastmon.sampling.roots import pieces

    began, total = time.perf_counter(), 0
    for name, file_spans in spans.items():
        handle = client.File()
        assert handle.open(f"{base}{name}", OpenFlags.READ, timeout=30)[0].ok
        batch: list[tuple[int, int]] = []
        for piece in pieces(file_spans, MIB):
            batch.append(piece)
            if len(batch) == 16:
                total += sum(len(c.buffer) for c in handle.vector_read(batch)[1].chunks)
                batch = []
        if batch:
            total += sum(len(c.buffer) for c in handle.vector_read(batch)[1].chunks)
        handle.close()
    return time.perf_counter() - began, total


def bare_http(base: str, spans: dict[str, list[tuple[int, int]]]) -> tuple[float, int]:
    import httpx

    began, total = time.perf_counter(), 0
    with httpx.Client(timeout=30) as http:
        for name, file_spans in spans.items():
            for start, end in file_spans:
                ranged = {"Range": f"bytes={start}-{end - 1}"}
                with http.stream("GET", f"{base}{name}", headers=ranged) as answer:
                    total += sum(len(chunk) for chunk in answer.iter_bytes())
    return time.perf_counter() - began, total


def through_fastmon(base: str, names: list[str], run: int) -> tuple[float, int, int]:
    """Sample the STFs announced at ``base``; seconds, bytes read and samples stored."""
    from django.db.models import Sum
    from django.test import override_settings

    from fastmon.models import StfFile, TfSample
    from fastmon.sampling.service import sample_stfs

    stfs = StfFile.objects.filter(run__run_number=run)
    TfSample.objects.filter(run__run_number=run).delete()
    stfs.update(status=StfFile.Status.READY, sampled_at=None, sampling_attempts=0)
    from django.conf import settings

    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [base]}):
        began = time.perf_counter()
        for start in range(0, len(names), 50):
            sample_stfs(names[start : start + 50])
        seconds = time.perf_counter() - began
    read = stfs.aggregate(n=Sum("bytes_read"))["n"] or 0
    return seconds, read, TfSample.objects.filter(run__run_number=run).count()


def announce(base: str, paths: list[Path], run: int, size: int) -> list[str]:
    """The STFs of the files, announced as stf_ready at ``base``."""
    import json

    from fastmon.inbound.messages import InboundMessage
    from fastmon.ingest.pipeline import ingest_batch
    from fastmon.testing.messages import example

    names = [f"swf.{run}.{n:06d}.stf" for n in range(1, len(paths) + 1)]
    ingest_batch([
        InboundMessage(json.dumps(example("stf_ready", run_id=run, filename=name, sequence=n,
                                          file_url=f"{base}{path.name}", size_bytes=size)))
        for n, (name, path) in enumerate(zip(names, paths, strict=True), 1)
    ])  # fmt: skip
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stfs", type=int, default=16)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    recreate_database()
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    size = args.size_mib * MIB
    directory = Path(settings.REMOTE_DATA_DIR) / "bench-remote"
    paths = write_files(directory, args.stfs, size)
    spans = spans_of(paths, size)
    bases = {
        "root://": f"{settings.XROOTD_URL}/{directory.name}/",
        "http://": f"{settings.HTTP_DATA_URL}{directory.name}/",
    }
    # The STFs are announced once; each round points them at one protocol's server, so both
    # readers read the ranges the policy chose for them.
    sampled = announce(bases["root://"], paths, RUN, size)
    results: dict[str, dict[str, list[float]]] = {
        label: {"bare": [], "fastmon": [], "samples": []} for label in bases
    }
    for _ in range(args.rounds):
        for label, base in bases.items():
            from fastmon.models import StfFile

            for n, path in enumerate(paths, 1):  # point the STFs at this protocol's server
                StfFile.objects.filter(stf_filename=f"swf.{RUN}.{n:06d}.stf").update(
                    file_url=f"{base}{path.name}")  # fmt: skip
            bare = bare_xrootd if label == "root://" else bare_http
            seconds, read = bare(base, spans)
            results[label]["bare"].append(read / MIB / seconds)
            seconds, fm_read, samples = through_fastmon(base, sampled, RUN)
            assert fm_read == read, (fm_read, read)  # the same bytes, read by both
            results[label]["fastmon"].append(fm_read / MIB / seconds)
            results[label]["samples"].append(samples / seconds)

    sampled_mib = sum(end - start for s in spans.values() for start, end in s) / MIB
    print(f"{args.stfs} STFs of {args.size_mib} MiB, testbed policy: {sampled_mib:.0f} MiB sampled "
          f"({sampled_mib / (args.stfs * args.size_mib):.0%} of the files) per read; "
          f"medians of {args.rounds} alternated rounds")  # fmt: skip
    for label, figures in results.items():
        rounds = "  ".join(f"{b:.0f}/{f:.0f}" for b, f in zip(figures["bare"], figures["fastmon"],
                                                             strict=True))  # fmt: skip
        print(f"{label:8} rounds (bare/fastmon MiB/s): {rounds}")
        bare, fastmon = statistics.median(figures["bare"]), statistics.median(figures["fastmon"])
        print(
            f"{label:8} bare client {bare:8.0f} MiB/s   fastmon {fastmon:8.0f} MiB/s, "
            f"{statistics.median(figures['samples']):6.0f} TF samples/s   "
            f"ratio {fastmon / bare:.2f} (target >= {TARGET})"
        )


if __name__ == "__main__":
    main()
