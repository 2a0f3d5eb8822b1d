"""Quality checks evaluated on ingest, at the full detector's rate: run_fastmon's consume rate
with the default checks and with none, beside stomp.py's raw rate, in one run.

    .venv/bin/python benchmarks/quality.py [--messages 20000] [--rounds 3]

Needs the services (`scripts/services.sh up`). As benchmarks/consume.py, whose harness it uses:
persistent stf_gen announcements of one running run, with STF sizes, drained by a bare stomp.py
client (the baseline), by run_fastmon with ``CHECKS=[]`` and by run_fastmon with the default
checks (every announcement evaluated by every check, per batch, in the batch's transaction),
in alternated rounds. Prints the rates, each one's ratio to the raw rate, and how much the
checks lower that ratio, beside #21's targets: >= 2,000 announcements/s evaluated, <= 10 %.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.consume import (
    BATCH_SIZE,
    Stalled,
    fill_queue,
    raw_consume_rate,
    recreate_database,
    run_fastmon_rate,
)

TARGET_RATE, TARGET_DROP = 2000, 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2000)
    args = parser.parse_args()

    recreate_database()
    import django

    django.setup()
    from django.core.management import call_command

    from fastmon.conf import DEFAULTS

    call_command("migrate", verbosity=0)

    def queued(kind: str) -> tuple[str, list[str]]:
        destination = f"/queue/fastmon.bench.{kind}.{uuid.uuid4().hex[:8]}"
        return destination, fill_queue(destination, args.warmup + args.messages, sizes=True)

    def raw(warmup: int = args.warmup) -> float:
        destination, names = queued("raw")
        try:
            return raw_consume_rate(destination, len(names), warmup)
        except Stalled as exc:
            sys.exit(str(exc))

    raw(warmup=0)  # a warm broker for all
    rates: dict[str, list[float]] = {"raw": [], "none": [], "checks": []}
    for round_number in range(1, args.rounds + 1):
        rates["raw"].append(raw())
        rates["none"].append(run_fastmon_rate(*queued("none"), warmup=args.warmup,
                                              batch_size=BATCH_SIZE, CHECKS=[]))  # fmt: skip
        rates["checks"].append(run_fastmon_rate(*queued("checks"), warmup=args.warmup,
                                                batch_size=BATCH_SIZE,
                                                CHECKS=DEFAULTS["CHECKS"]))  # fmt: skip
        figures = ", ".join(f"{kind} {found[-1]:.0f} msg/s" for kind, found in rates.items())
        print(f"round {round_number}: {figures}", flush=True)
    base, none, checks = (statistics.median(rates[k]) for k in ("raw", "none", "checks"))
    drop = 1 - (checks / base) / (none / base)
    print(
        f"medians of {args.rounds} alternated rounds of {args.messages} stf_gen, each after "
        f"{args.warmup} to warm up; {len(DEFAULTS['CHECKS'])} default checks"
    )
    print(f"raw stomp.py consume + ack         {base:8.0f} msg/s  baseline")
    print(f"run_fastmon, no checks             {none:8.0f} msg/s  ratio {none / base:.2f}")
    print(
        f"run_fastmon, default checks        {checks:8.0f} msg/s  ratio {checks / base:.2f}  "
        f"({checks / TARGET_RATE:.1f}x the {TARGET_RATE:,}/s target)"
    )
    print(f"the checks lower the ratio by {drop:.1%} (target <= {TARGET_DROP:.0%})")


if __name__ == "__main__":
    main()
