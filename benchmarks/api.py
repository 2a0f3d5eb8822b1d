"""API latency with 1 M TF samples in PostgreSQL: p50/p95 of the main queries.

    .venv/bin/python benchmarks/api.py [--samples 1000000] [--requests 200]

Needs the services (`scripts/services.sh up`). Loads runs, STFs (7 samples each) and TF samples
into its own database, fastmon_bench, server-side (generate_series), then times whole API
requests (URL routing, filters, queries, serialisation; in process, no network) and prints
p50/p95 beside the issues' target: p95 <= 30 ms for a filtered page and for a run's
statistics (its counters are made as the migration makes them, and the time that takes is
printed).
"""

from __future__ import annotations

import argparse
import os
import random
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

TARGET_MS = 30.0
RUNS = 20
FIRST_RUN = 100010


def load(samples: int) -> None:
    from django.db import connection

    stfs = samples // 7
    per_run = stfs // RUNS
    print(f"loading {RUNS} runs, {stfs} STFs, {stfs * 7} TF samples ...", flush=True)
    begin = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO fastmon_run (run_number, namespace, execution_id, state, substate,
                   run_conditions, fast_processing, created_at, updated_at)
               SELECT %s + r, 'epic-fastmon', 'bench', 'run', 'physics', '{}', '{}', now(), now()
               FROM generate_series(0, %s - 1) AS r""",
            [FIRST_RUN, RUNS],
        )
        cursor.execute(
            """INSERT INTO fastmon_stffile (stf_filename, run_id, sequence, size_bytes, checksum,
                   file_url, tf_count, state, substate, status, metadata, received_at,
                   committed_at, sampled_at, updated_at, sampling_attempts, read_protocol)
               SELECT format('swf.%%s.%%s.stf', run.run_number, lpad(s::text, 6, '0')), run.id,
                   s, 2147483648, '', '', 1000, 'run',
                   CASE WHEN s %% 10 = 0 THEN 'standby' ELSE 'physics' END, 'sampled', '{}',
                   now() - (s || ' seconds')::interval, now() - (s || ' seconds')::interval,
                   now() - (s || ' seconds')::interval + interval '1 second', now(), 1, ''
               FROM fastmon_run AS run, generate_series(1, %s) AS s""",
            [per_run],
        )
        cursor.execute(
            """INSERT INTO fastmon_tfsample (tf_file_id, tf_filename, stf_id, run_id, tf_first,
                   tf_last, tf_count, file_size_bytes, checksum, status, metadata,
                   size_estimated, monitor_state, policy_overrides, created_at, published_at,
                   updated_at)
               SELECT gen_random_uuid(),
                   format('%%s_tf_%%s.tf', left(stf.stf_filename, -4), lpad(k::text, 3, '0')),
                   stf.id, stf.run_id, k * 140, k * 140 + 20, 21, 45097156, '',
                   (ARRAY['registered','processing','processed','done','failed'])[1 + k %% 5],
                   '{"state": "run", "substate": "physics"}', false, '', '{}',
                   stf.received_at + interval '1 second',
                   stf.received_at + interval '1.05 seconds', now()
               FROM fastmon_stffile AS stf, generate_series(0, 6) AS k""",
            [],
        )
    print(f"loaded in {time.perf_counter() - begin:.0f} s", flush=True)
    # Rows loaded behind fastmon's back: its counters are made as the migration makes them.
    from fastmon.statistics.counters import recount

    begin = time.perf_counter()
    written = recount()
    print(f"counted in {time.perf_counter() - begin:.1f} s ({written} run counters)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # the steady state autovacuum keeps


def timed(client, url: str, params: dict, requests: int) -> tuple[float, float]:
    times = []
    for _ in range(requests):
        begin = time.perf_counter()
        response = client.get(url, params)
        times.append((time.perf_counter() - begin) * 1000)
        assert response.status_code == 200, (url, params, response.status_code)
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    recreate_database()
    django.setup()
    from django.core.management import call_command
    from rest_framework.test import APIClient

    call_command("migrate", verbosity=0)
    load(args.samples)
    client, api = APIClient(), "/fastmon/api"
    run = FIRST_RUN + RUNS // 2
    stf = f"swf.{run}.{random.randint(1, 1000):06d}.stf"
    cases = [
        ("fastmon-files, one run, page of 100", f"{api}/fastmon-files/",
         {"run_number": run, "limit": 100}),
        ("fastmon-files, by status, page of 100", f"{api}/fastmon-files/",
         {"status": "done", "limit": 100}),
        ("fastmon-files, one STF (unpaginated)", f"{api}/fastmon-files/", {"stf_filename": stf}),
        ("fastmon-files, run + time range, page of 100", f"{api}/fastmon-files/",
         {"run_number": run, "created_after": "2000-01-01T00:00:00Z", "limit": 100}),
        ("stf-files, one run, sequence range", f"{api}/stf-files/",
         {"run_number": run, "sequence_min": 100, "sequence_max": 199}),
        ("a run's statistics", f"{api}/runs/{run}/statistics/", {}),
    ]  # fmt: skip
    print(f"{args.requests} requests each, in process (no network)")
    for name, url, params in cases:
        p50, p95 = timed(client, url, params, args.requests)
        targeted = "page" in name or "statistics" in name
        verdict = f"  {p95 / TARGET_MS:.2f} of the 30 ms target" if targeted else ""
        print(f"{name:48s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms{verdict}", flush=True)


if __name__ == "__main__":
    main()
