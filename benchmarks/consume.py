"""Announcements/s that run_fastmon stores and acks, beside stomp.py's raw consume rate.

    .venv/bin/python benchmarks/consume.py [--messages 20000]

Needs the services (`scripts/services.sh up`). In one run, on the same broker: N persistent
stf_gen bodies are queued, then drained (1) by a bare stomp.py client acking each frame
(client-individual, the same prefetch) and (2) by `manage.py run_fastmon` with its default
prefetch and batch size, timed until all N rows are committed, in alternated rounds; then (3) by
run_fastmon with batches of one frame, the naive one-commit-per-message consumer. Each consumer's
clock starts once it has taken the first WARMUP announcements queued before the N (acked, for
the raw client; committed, for run_fastmon): the rates are those of a consumer that runs for
months, not of its first batch (a new process's first queries, imports and validations). Prints
rates and ratios to (1), the issue's baseline. Uses its own database, fastmon_bench, created afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["FASTMON_DB_NAME"] = "fastmon_bench"

import django  # noqa: E402
import psycopg  # noqa: E402
import stomp  # noqa: E402

from fastmon.conf import DEFAULTS  # noqa: E402

# run_fastmon's defaults, for both consumers.
PREFETCH, BATCH_SIZE = DEFAULTS["PREFETCH"], DEFAULTS["BATCH_SIZE"]


def recreate_database() -> None:
    from django.conf import settings

    db = settings.DATABASES["default"]
    server = {
        "host": db["HOST"],
        "port": db["PORT"],
        "user": db["USER"],
        "password": db["PASSWORD"],
    }
    with psycopg.connect(**server, dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fastmon_bench")
        conn.execute("CREATE DATABASE fastmon_bench")


def broker() -> stomp.Connection:
    from fastmon.conf import fastmon_settings

    connection = stomp.Connection(fastmon_settings.BROKER_HOSTS, auto_decode=False)
    connection.connect(fastmon_settings.BROKER_USER, fastmon_settings.BROKER_PASSWORD, wait=True)
    return connection


def fill_queue(destination: str, count: int, sizes: bool = False) -> list[str]:
    """Queue ``count`` persistent announcements (with STF sizes about 2 GB: ``sizes``); return
    once the broker has them all, with their file names in order."""
    done = threading.Event()

    class Receipt(stomp.ConnectionListener):
        def on_receipt(self, frame: stomp.utils.Frame) -> None:
            done.set()

    connection = broker()
    connection.set_listener("receipt", Receipt())
    run = 100010 + int(time.time() * 1000) % 900000  # a fresh run: every STF is new
    names = []
    for n in range(1, count + 1):
        body = {
            "msg_type": "stf_gen",
            "namespace": "epic-fastmon",
            "sender": "benchmark",
            "execution_id": "bench",
            "run_id": run,
            "filename": f"swf.{run}.{n:06d}.stf",
            "sequence": n,
            "timestamp": "2026-11-20T14:03:21.630555",
            "state": "run",
            "substate": "physics",
        }
        if sizes:
            body["size"] = 2 * 1024**3 + (n % 97) * 4096
        headers = {"persistent": "true"}
        if n == count:
            headers["receipt"] = "last"
        connection.send(destination, json.dumps(body), headers=headers)
        names.append(body["filename"])
    done.wait(120)
    connection.disconnect()
    return names


def raw_consume_rate(destination: str, count: int, warmup: int) -> float:
    """stomp.py alone: client-individual ack of every frame, as it arrives; the clock runs from
    the ``warmup``-th ack (or the subscription) to the last."""
    received = 0
    done = threading.Event()
    begin = 0.0

    class Ack(stomp.ConnectionListener):
        def __init__(self, connection: stomp.Connection) -> None:
            self.connection = connection

        def on_message(self, frame: stomp.utils.Frame) -> None:
            nonlocal received, begin
            self.connection.ack(frame.headers["message-id"], frame.headers["subscription"])
            received += 1
            if received == warmup:
                begin = time.perf_counter()
            if received == count:
                done.set()

    connection = broker()
    connection.set_listener("ack", Ack(connection))
    begin = time.perf_counter()
    connection.subscribe(destination, id="1", ack="client-individual",
                         headers={"activemq.prefetchSize": str(PREFETCH)})  # fmt: skip
    seen = -1
    while not done.wait(STALL_S):
        if received == seen:
            connection.transport.disconnect_socket()  # frees the receiver thread
            raise Stalled(f"raw consumer stalled at {received} of {count}")
        seen = received
    elapsed = time.perf_counter() - begin
    connection.disconnect()
    return (count - warmup) / elapsed


# The bare client acks from stomp.py's receiver thread. Rarely (one drain of a few dozen on the
# development machine) its drain stops with frames still queued, as if it and the broker both
# blocked writing to each other (compare jasonrbriggs/stomp.py#176); run_fastmon acks from
# another thread. A drain with no frame for this long is given up, and done again on a new queue.
STALL_S = 30


class Stalled(Exception):
    pass


def run_fastmon_rate(
    destination: str, names: list[str], warmup: int, batch_size: int, **settings: object
) -> float:
    """run_fastmon (with these FASTMON ``settings``) from the commit of the ``warmup``-th
    announcement (or its subscription) until all rows are committed (acks follow each commit).

    The clock stops when the last announcement's row is there and all are: one indexed lookup
    per poll until then, as a COUNT(*) of a growing table at each poll would take CPU from
    run_fastmon on a small machine (the raw client's clock has no such cost)."""
    from django.db import connection

    from fastmon.models import StfFile

    # TRUNCATE, not DELETE: the last round's dead rows, and the autovacuum they set off, would
    # slow this round's inserts, a cost of the harness, not of run_fastmon.
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {StfFile._meta.db_table} CASCADE")
    changes = {"SUBSCRIBE_DESTINATIONS": [destination], "PREFETCH": PREFETCH,
               "BATCH_SIZE": batch_size, "SUMMARY_INTERVAL_S": 3600,
               "AGENT_NAME": f"fastmon-bench-{uuid.uuid4().hex[:6]}", **settings}  # fmt: skip
    env = {**os.environ, "FASTMON_TEST_SETTINGS": json.dumps(changes)}
    log_path = Path(f"/tmp/fastmon-bench-{uuid.uuid4().hex[:6]}.log")
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "manage.py", "run_fastmon"], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        while "subscribed to" not in log_path.read_text():
            if process.poll() is not None:
                sys.exit(f"run_fastmon exited:\n{log_path.read_text()}")
            time.sleep(0.005)
        begin = started = time.perf_counter()
        if warmup:
            stored(names[warmup - 1], started)
            begin = time.perf_counter()
        stored(names[-1], started, count=len(names))
        elapsed = time.perf_counter() - begin
        process.terminate()
        exit_code = process.wait(30)
    if exit_code != 0:
        sys.exit(f"run_fastmon exited with {exit_code}:\n{log_path.read_text()}")
    log_path.unlink()
    return (len(names) - warmup) / elapsed


def stored(name: str, started: float, count: int | None = None) -> None:
    """Return once the row of announcement ``name`` is committed (and ``count`` rows are)."""
    from fastmon.models import StfFile

    while not (
        StfFile.objects.filter(stf_filename=name).exists()
        and (count is None or StfFile.objects.count() == count)
    ):
        if time.perf_counter() - started > 900:
            sys.exit(f"run_fastmon stored only {StfFile.objects.count()} rows")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5, help="raw and run_fastmon, alternated")
    parser.add_argument("--naive-messages", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=2000,
                        help="announcements taken before the clock starts")  # fmt: skip
    args = parser.parse_args()

    recreate_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    n, warmup = args.messages, args.warmup

    def queued(kind: str, count: int) -> tuple[str, list[str]]:
        """A fresh queue of ``count`` announcements: its name and their file names."""
        destination = f"/queue/fastmon.bench.{kind}.{uuid.uuid4().hex[:8]}"
        return destination, fill_queue(destination, count)

    def raw_rate_of(destination: str, names: list[str], warmup: int, tries: int = 3) -> float:
        try:
            return raw_consume_rate(destination, len(names), warmup)
        except Stalled as exc:
            if tries == 1:
                sys.exit(str(exc))
            print(f"{exc}; again on a new queue", flush=True)
            return raw_rate_of(*queued("raw", len(names)), warmup=warmup, tries=tries - 1)

    raw_rate_of(*queued("warmup", 2000), warmup=0)  # a warm broker for both
    raw, fastmon = [], []
    for round_number in range(1, args.rounds + 1):
        raw.append(raw_rate_of(*queued("raw", warmup + n), warmup=warmup))
        fastmon.append(run_fastmon_rate(*queued("fastmon", warmup + n), warmup=warmup,
                                        batch_size=BATCH_SIZE))  # fmt: skip
        print(f"round {round_number}: raw {raw[-1]:.0f} msg/s, run_fastmon {fastmon[-1]:.0f} msg/s",
              flush=True)  # fmt: skip
    naive_warmup = min(warmup, args.naive_messages // 10)
    naive = run_fastmon_rate(*queued("naive", naive_warmup + args.naive_messages),
                             warmup=naive_warmup, batch_size=1)  # fmt: skip

    raw_rate, fastmon_rate = statistics.median(raw), statistics.median(fastmon)
    print(f"persistent stf_gen announcements, client-individual ack, prefetch {PREFETCH}; medians "
          f"of {args.rounds} alternated rounds of {n}, each after {warmup} to warm up")  # fmt: skip
    print(f"raw stomp.py consume + ack          {raw_rate:8.0f} msg/s  baseline")
    print(f"run_fastmon stored + acked          {fastmon_rate:8.0f} msg/s  "
          f"ratio {fastmon_rate / raw_rate:.2f} (target >= 0.5)")  # fmt: skip
    print(f"run_fastmon, one commit per message {naive:8.0f} msg/s  "
          f"ratio {naive / raw_rate:.2f} ({args.naive_messages} messages)")  # fmt: skip


if __name__ == "__main__":
    main()
