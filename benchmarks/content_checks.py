"""A content cycle's cost with every built-in check over the testbed map: what run_fastmon's
content loop spends per cycle on one running run, merge and checks apart.

    .venv/bin/python benchmarks/content_checks.py [--cycles 20] [--hits 200000]

Needs PostgreSQL (`scripts/services.sh up`); uses its own database, fastmon_bench, created
afresh. Each cycle stores one STF's partial (``--hits`` hits a detector, every detector of the
map, BEMC made BEMC's reference first so ReferenceComparison compares), then times the merge
(``merge_cycle``) and the content checks (``on_content``) separately. Prints medians and p95
beside the issue's target: a cycle's checks evaluate in at most 200 ms.
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

TARGET_S = 0.200
RUN = 100990


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--hits", type=int, default=200_000)
    args = parser.parse_args()
    recreate_database()
    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from fastmon.content.merging import merge_cycle
    from fastmon.content.references import choose_reference
    from fastmon.models import ContentPartial, Run, StfFile
    from fastmon.quality.evaluate import on_content
    from fastmon.testing.content import filled_content

    call_command("migrate", verbosity=0)
    run = Run.objects.create(run_number=RUN, state="run", substate="physics",
                             state_seen_at=timezone.now() - timedelta(minutes=5))  # fmt: skip
    merges, checks = [], []
    for cycle in range(1, args.cycles + 1):
        stf = StfFile.objects.create(stf_filename=f"bench.{RUN}.{cycle:06d}.stf", run=run)
        partial = filled_content(hits=args.hits, seed=cycle).dumps()
        ContentPartial.objects.create(run=run, stf=stf, data=partial)
        begin = time.perf_counter()
        merged = merge_cycle()
        middle = time.perf_counter()
        on_content(merged.run_ids)
        checks.append(time.perf_counter() - middle)
        merges.append(middle - begin)
        if cycle == 1:
            choose_reference("BEMC", run)
    checks, merges = checks[1:], merges[1:]  # the first cycle had no reference yet

    def figures(values: list[float]) -> str:
        p95 = statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]
        return f"median {statistics.median(values) * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms"

    print(f"content cycles of one running run, testbed map, {args.hits} hits a detector per "
          f"cycle, {len(checks)} cycles")  # fmt: skip
    print(f"merge (fold the partial, the window, the live event)   {figures(merges)}")
    print(f"every built-in check (on_content)                      {figures(checks)}  "
          f"ratio {statistics.median(checks) / TARGET_S:.2f} of the 200 ms target")  # fmt: skip


if __name__ == "__main__":
    main()
