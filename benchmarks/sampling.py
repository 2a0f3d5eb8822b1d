"""TF samples registered per second (sample row + outbox row + live event, committed) by real
Celery workers, with one and with two worker processes.

    .venv/bin/python benchmarks/sampling.py [--stfs 3000] [--with-files]

Needs the services (`scripts/services.sh up`). For each worker count: N ready STFs are stored,
the workers are started and waited for, then N/SAMPLING_TASK_CHUNK `sample_stfs` tasks are
enqueued and the clock runs until every STF is sampled. Without --with-files the STF files are
not reachable (metadata-only samples: the registration path alone); with it, each STF is a
64 MiB file whose sampled ranges are really read. Prints rates beside the issue's target of
5,000/s and the full detector's need of about 1,200/s. Uses its own database, fastmon_bench.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["FASTMON_DB_NAME"] = "fastmon_bench"

import django  # noqa: E402

from benchmarks.consume import recreate_database  # noqa: E402

TARGET, DETECTOR = 5000, 1200
MIB = 1024**2


def store_ready_stfs(count: int, run: int, data_dir: Path | None) -> list[str]:
    from django.test import override_settings

    from fastmon.inbound.messages import InboundMessage
    from fastmon.ingest.pipeline import ingest_batch

    names, messages = [], []
    for number in range(1, count + 1):
        name = f"swf.{run}.{number:06d}.stf"
        url = ""
        if data_dir is not None:
            path = data_dir / name
            with path.open("wb") as f:
                f.write(os.urandom(MIB))
                f.truncate(64 * MIB)
            url = f"file://{path}"
        body = {"msg_type": "stf_ready", "namespace": "epic-fastmon", "run_id": run,
                "filename": name, "sequence": number, "file_url": url,
                "size_bytes": 64 * MIB, "state": "run", "substate": "physics"}  # fmt: skip
        messages.append(InboundMessage(json.dumps(body)))
        names.append(name)
    with override_settings(FASTMON={"SAMPLING_ENABLED": False}):
        for start in range(0, count, 500):
            ingest_batch(messages[start : start + 500])
    return names


def start_workers(processes: int, data_dir: Path | None, log: Path) -> subprocess.Popen:
    changes = {"DATA_ROOTS": [str(data_dir)] if data_dir else []}
    env = {**os.environ, "FASTMON_TEST_SETTINGS": json.dumps(changes)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests", "worker", "--loglevel", "info",
         "--concurrency", str(processes), "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    while "ready." not in log.read_text():
        if worker.poll() is not None:
            sys.exit(f"the worker exited:\n{log.read_text()}")
        time.sleep(0.1)
    return worker


def measure(processes: int, count: int, with_files: bool) -> tuple[float, int]:
    from fastmon.conf import fastmon_settings
    from fastmon.models import StfFile, TfSample
    from fastmon.tasks import sample_stfs
    from tests.celery import app

    app.control.purge()
    run = 100010 + processes
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) if with_files else None
        names = store_ready_stfs(count, run, data_dir)
        log = Path(tmp) / "worker.log"
        worker = start_workers(processes, data_dir, log)
        try:
            begin = time.perf_counter()
            chunk = fastmon_settings.SAMPLING_TASK_CHUNK
            for start in range(0, count, chunk):
                sample_stfs.delay(names[start : start + chunk])
            pending = StfFile.objects.filter(run__run_number=run, sampled_at__isnull=True)
            while pending.exists():
                if time.perf_counter() - begin > 900:
                    sys.exit("sampling did not finish within 15 minutes")
                time.sleep(0.05)
            elapsed = time.perf_counter() - begin
        finally:
            worker.terminate()
            worker.wait(60)
    samples = TfSample.objects.filter(stf__run__run_number=run).count()
    return samples / elapsed, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stfs", type=int, default=3000)
    parser.add_argument("--with-files", action="store_true")
    args = parser.parse_args()

    recreate_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    kind = "64 MiB files, ranges read" if args.with_files else "metadata-only (no file reads)"
    print(f"{args.stfs} STFs per measurement, testbed policy (7 samples each), {kind}")
    for processes in (1, 2):
        rate, samples = measure(processes, args.stfs, args.with_files)
        print(f"{processes} worker process{'es' if processes > 1 else '  '}  {rate:8.0f} "
              f"TF samples/s ({samples} samples)  {rate / TARGET:.2f} of the 5,000/s target, "
              f"{rate / DETECTOR:.1f}x the detector's 1,200/s")  # fmt: skip


if __name__ == "__main__":
    main()
